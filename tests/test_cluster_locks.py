"""Who may share a data directory and an SQLite history, with real processes (run.py, redis-server).

A standalone server needs its data directory to itself; the processes of a cluster (``serve
--redis`` web tiers, workers) share one with each other; an SQLite history has one writer. Each
refusal is one ``error:`` line and exit code 2, before anything starts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from server.cluster import registry, state
from server.cluster.redis_conn import connect
from server.settings import LOCK_FILE
from server.sinks.history_lock import LOCK_SUFFIX
from server.subprocesses import stop_process
from tests.support.wait import wait_until
from tests.support.web import free_port

pytestmark = pytest.mark.slow  # real processes: see pyproject.toml

ROOT = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k not in ("GENRE_MONITOR_TOKEN", "GENRE_MONITOR_HISTORY_URL")}
ENV.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


@pytest.fixture
def r(redis_url):
    client = connect(redis_url)
    client.flushdb()
    return client


class Running:
    """``run.py ARGS`` in the background, its output in a log file."""

    def __init__(self, args: list[str], log: Path):
        self.log_path = log
        with open(log, "wb") as out:
            self.p = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, env=ENV, stdout=out,
                                      stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def holds(self, lock: Path) -> None:
        """Wait until this process has written its pid into ``lock``: it holds it."""
        def written():
            assert self.p.poll() is None, f"exited ({self.p.returncode}):\n{self.log()}"
            return lock.exists() and f"pid {self.p.pid}" in lock.read_text()
        wait_until(written, 120, 0.1, lambda: f"{lock} not taken:\n{self.log()}")

    def serves(self, port: int) -> None:
        def up():
            assert self.p.poll() is None, f"exited ({self.p.returncode}):\n{self.log()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    return True
            except OSError:
                return False
        wait_until(up, 120, 0.2, lambda: f"port {port} not served:\n{self.log()}")

    def end(self) -> None:
        stop_process(self.p, grace=10)


def refused(args: list[str]) -> str:
    """Run ``run.py ARGS`` to its end: exit code 2 and one ``error:`` line, which is returned."""
    done = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=120)
    out = done.stdout + done.stderr
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in out, (done.returncode, out)
    return errors[0]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_standalone_servers_data_dir_and_history_are_refused_to_cluster_processes(r, redis_url, tmp_path):
    data, other = tmp_path / "data", tmp_path / "other"
    server = Running(["serve", "--data-dir", str(data), "--port", str(free_port())], tmp_path / "server.log")
    try:
        server.holds(data / LOCK_FILE)
        server.holds(data / f"history.sqlite{LOCK_SUFFIX}")
        port = free_port()
        msg = refused(["serve", "--redis", redis_url, "--data-dir", str(data), "--port", str(port)])
        assert f"in use by a standalone server (pid {server.p.pid})" in msg and "--data-dir" in msg, msg
        assert not listening(port)
        msg = refused(["worker", "--redis", redis_url, "--data-dir", str(data), "--sources", "demo"])
        assert f"in use by a standalone server (pid {server.p.pid})" in msg, msg
        # Its own data directory, but the server's history file: one writer per SQLite file.
        msg = refused(["worker", "--redis", redis_url, "--data-dir", str(other), "--sources", "demo",
                       "--history-url", f"sqlite:///{data / 'history.sqlite'}"])
        assert f"is being written by another process (pid {server.p.pid})" in msg and "PostgreSQL" in msg, msg
        assert registry.ids(r) == [] and state.live_workers(r, 60) == {}  # no worker started, none registered
    finally:
        server.end()


def test_cluster_processes_share_a_data_dir_but_not_an_sqlite_history(r, redis_url, tmp_path):
    data, history = tmp_path / "data", tmp_path / "shared" / "history.sqlite"
    procs = []
    try:
        ports = [free_port(), free_port()]
        webs = [Running(["serve", "--redis", redis_url, "--data-dir", str(data), "--port", str(p)],
                        tmp_path / f"web{i}.log") for i, p in enumerate(ports)]
        procs += webs
        worker = Running(["worker", "--redis", redis_url, "--data-dir", str(data), "--history-url", str(history)],
                         tmp_path / "worker.log")
        procs.append(worker)
        for web, port in zip(webs, ports):
            web.serves(port)
        worker.holds(Path(f"{history}{LOCK_SUFFIX}"))

        port = free_port()
        msg = refused(["serve", "--data-dir", str(data), "--port", str(port)])
        assert "in use by the processes of a cluster" in msg and "--data-dir" in msg, msg
        assert not listening(port) and not (data / "history.sqlite").exists()
        # A second writer of the worker's SQLite history, from another data directory: a worker, a server.
        msg = refused(["worker", "--redis", redis_url, "--data-dir", str(tmp_path / "w2"), "--sources", "demo",
                       "--history-url", f"sqlite:///{history}"])
        assert f"is being written by another process (pid {worker.p.pid})" in msg, msg
        assert registry.ids(r) == []
        msg = refused(["serve", "--data-dir", str(tmp_path / "solo"), "--port", str(port), "--history-url", str(history)])
        assert f"is being written by another process (pid {worker.p.pid})" in msg, msg
        assert not listening(port)
    finally:
        for p in procs:
            p.end()
