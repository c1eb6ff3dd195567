"""The real server in a subprocess: start-up time, end-to-end latency, peak RSS with one source.

Latency runs from the capture of a window's last sample (the ``wall`` of its
``prediction``: the time its block entered the ring buffer) to the moment a
python-socketio client in this process receives that ``prediction``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from server.subprocesses import stop_process

from .common import BenchError, ROOT, log_tail, proc_status, stats_ms


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(audio_file: str, seconds: float = 30.0, start_timeout: float = 120.0) -> dict:
    """Start ``run.py serve`` with one real-time file source; time it and collect ``seconds`` of predictions."""
    import socketio

    port = _free_port()
    work = tempfile.mkdtemp(prefix="gm-bench-srv-")
    cmd = [sys.executable, str(ROOT / "run.py"), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", os.path.join(work, "data"), "--upload-dir", os.path.join(work, "uploads"),
           "--source", f"file:{audio_file}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    url = f"http://127.0.0.1:{port}"
    log_path = os.path.join(work, "server.log")
    received: list[tuple[float, dict]] = []
    got_first = threading.Event()

    t0 = time.time()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = socketio.Client(reconnection=False)

    @client.on("prediction")
    def _on_prediction(payload):
        received.append((time.time(), payload))
        got_first.set()

    try:
        http_s = None
        while time.time() - t0 < start_timeout:
            if proc.poll() is not None:
                raise BenchError(f"the server exited with code {proc.returncode}: {log_tail(log_path)}")
            try:
                with urllib.request.urlopen(url + "/", timeout=2) as r:
                    r.read()
                http_s = time.time() - t0
                break
            except OSError:
                time.sleep(0.05)
        if http_s is None:
            raise BenchError(f"the server did not answer within {start_timeout:.0f} s: {log_tail(log_path)}")
        client.connect(url, transports=["websocket"], wait_timeout=10)
        if not got_first.wait(start_timeout):
            raise BenchError(f"no prediction within {start_timeout:.0f} s: {log_tail(log_path)}")
        first_s = received[0][0] - t0
        n_before = len(received)
        time.sleep(seconds)
        status = proc_status(proc.pid)
    finally:
        try:
            client.disconnect()
        except Exception:
            pass
        stop_process(proc)
    # Skip the first predictions: they include the model's warm-up and the client's connection.
    latencies = [t - p["wall"] for t, p in received[n_before:]]
    if not latencies:
        raise BenchError("the server sent no predictions during the latency run")
    return {
        "startup_http_s": round(http_s, 2),
        "startup_first_prediction_s": round(first_s, 2),
        "latency": stats_ms(latencies),
        "peak_rss_mb_one_source": status.get("VmHWM"),
        "rss_mb_one_source": status.get("VmRSS"),
        "predictions": len(received),
    }


