"""Run the real app (``run.py serve``) in a subprocess on a free port for web tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from server import subprocesses
from server.subprocesses import stop_process
from tests.support.audio import make_music

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Generous: the first start loads TensorFlow and the model on a shared machine.
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def music_file(directory, seconds: float = 40.0) -> str:
    """A real audio file for a file source: a demo track if present, else generated music."""
    demo = sorted((ROOT / "media" / "demo").glob("*.ogg"))
    if demo:
        return str(demo[0])
    path = Path(directory) / "music.wav"
    if not path.exists():
        sf.write(path, make_music(sr=44100, seconds=seconds), 44100)
    return str(path)


def music_files(directory, n: int = 2, seconds: float = 60.0) -> list[str]:
    """``n`` different real audio files: demo tracks if there are enough, else generated music."""
    demo = sorted((ROOT / "media" / "demo").glob("*.ogg"))
    if len(demo) >= n:
        return [str(p) for p in demo[:n]]
    paths = []
    for i in range(n):
        path = Path(directory) / f"music-{i}.wav"
        if not path.exists():
            sf.write(path, make_music(sr=44100, seconds=seconds, seed=i, bpm=100.0 + 20 * i), 44100)
        paths.append(str(path))
    return paths


def write_wav(path, seconds: float = 2.0, sr: int = 22050) -> str:
    sf.write(path, make_music(sr=sr, seconds=seconds).astype(np.float32), sr)
    return str(path)


class ServerProcess:
    """A server in a subprocess: ``proc``, its ``url``, its log and the access token it printed (if any)."""

    def __init__(self, proc: subprocess.Popen, url: str, log_path: Path, token: str | None = None):
        self.proc, self.url, self.log_path, self.token = proc, url, log_path, token

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


@contextlib.contextmanager
def live_server(*sources: str, extra_args=(), timeout: float = START_TIMEOUT):
    """``with live_server("file:/a.wav") as srv:`` → the app answering at ``srv.url``."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="gm-web-"))
    log_path = workdir / "server.log"
    upload_dir = str(workdir / "uploads")
    cmd = [sys.executable, str(ROOT / "run.py"), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--upload-dir", upload_dir, "--data-dir", str(workdir / "data"), *extra_args]
    for spec in sources:
        cmd += ["--source", spec]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until_up(server, timeout)
        yield server
    finally:
        stop_process(proc)


def wait_until_up(server: ServerProcess, timeout: float) -> None:
    try:
        subprocesses.wait_until_up(server.url, server.proc, timeout)
    except subprocesses.NotUp as exc:
        raise RuntimeError(f"{exc}:\n{server.log()}") from None


# --- the web tier alone: ``serve()`` in a subprocess with an Engine that loads no model ----------------
@contextlib.contextmanager
def app_server(host: str = "127.0.0.1", timeout: float = 60.0, **serve_kwargs):
    """``server.web.app.serve(Engine(), host, port, **serve_kwargs)`` in a subprocess.

    The engine is real but never loads a model (security tests exercise the web tier).
    ``sources=[spec, ...]`` are started before it serves, ``store=PATH`` serves the history in
    that file (kept whatever its age), and ``worker=True`` runs the engine's worker (without a
    model: live sources still send spectrograms), ``streaming={"SEND_STALL_S": 2, ...}`` sets
    ``server.web.streaming``'s limits. The server is reached on 127.0.0.1 whatever
    ``host`` it binds; ``srv.token`` is the token the server printed, if any. ``file_size_limit=N``
    (bytes) makes every file the server writes end at N, as a full disk would.
    """
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="gm-app-"))
    log_path = workdir / "server.log"
    config = {"host": host, "port": port, "upload_dir": str(workdir / "uploads"), **serve_kwargs}
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("GENRE_MONITOR_TOKEN", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.web", json.dumps(config)], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until_up(server, timeout)
        found = re.search(r"\?token=(\S+)", server.log())
        server.token = found.group(1) if found else None
        yield server
    finally:
        stop_process(proc)


def _run_app_server(config: dict) -> None:
    from server.engine import Engine
    from server.web.app import serve

    engine = Engine()
    worker = config.pop("worker", False)
    if "streaming" in config:  # shorter deadlines, fewer slots for streamed responses (server.web.streaming)
        from server.web import streaming

        for name, value in config.pop("streaming").items():
            assert hasattr(streaming, name), name
            setattr(streaming, name, value)
    if "file_size_limit" in config:  # a full disk, for this process only
        import resource

        limit = config.pop("file_size_limit")
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    def start(start_task=None):
        # No model: this process serves the page, REST and Socket.IO, and runs the worker if asked.
        if worker:
            engine.worker.start(start_task)

    engine.start = start
    for spec in config.pop("sources", []):
        engine.start_source(spec)
    if config.get("store"):  # a history file path: the store the app serves its history from
        from server.sinks.history import open_store

        config["store"] = open_store(config["store"], retention_days=1e6)
    host, port, upload_dir = config.pop("host"), config.pop("port"), config.pop("upload_dir")
    serve(engine, host=host, port=port, upload_dir=upload_dir, **config)


if __name__ == "__main__":
    _run_app_server(json.loads(sys.argv[1]))
