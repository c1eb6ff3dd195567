"""Many dashboards on the real server: every one gets every prediction, and how late.

``run.py serve`` runs with one real-time file source; ``clients`` dashboards on the WebSocket
transport stay connected for ``seconds``. Each is a bare Socket.IO session on a sans-IO
WebSocket (wsproto), all of a process's on one selector, so that the measuring side costs
little of the shared machine: a thread-per-client Socket.IO client (python-socketio's) at 200
clients took most of two cores and starved the server it was measuring. The clients all come
from 127.0.0.1, so the server runs without the per-address session cap
(``max_sessions_per_client`` 0). Each records every ``prediction`` and its latency:
from the capture of the window's last sample (its ``wall``) to its arrival. The
predictions asked for are those captured within the measured span that reached any client; a
client that did not get one of them (or got it over ``LATE`` seconds after the span) missed it.
``python -m bench.dashboards [--clients 200] [--seconds 60]`` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time

from server.subprocesses import NotUp, stop_process, wait_until_up

from .common import BenchError, ROOT, log_tail, proc_status, stats_ms, write_files

PROCESSES = 2  # client processes: one thread each, every connection on one selector
LATE = 1.0  # seconds after the span's last capture a prediction may still arrive (later: missed)
SOCKET_PATH = "/socket.io/?EIO=4&transport=websocket"
PREDICTION = '42["prediction",'  # a Socket.IO EVENT packet carrying a prediction


class _Dashboard:
    """One dashboard's Socket.IO session on a raw WebSocket (wsproto, no thread of its own).

    It speaks just enough Engine.IO/Socket.IO to be a watcher: opens the default namespace,
    answers pings, and decodes only ``prediction`` events (a spectrogram is counted, not parsed),
    so that hundreds of them cost the measuring machine little next to the server."""

    def __init__(self, host: str, port: int):
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import Request

        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock = socket.create_connection((host, port), timeout=20)
        self.sock.sendall(self.ws.send(Request(host=f"{host}:{port}", target=SOCKET_PATH)))
        self.sock.setblocking(False)
        self.text: list[str] = []
        self.connected = self.closed = False
        self.error: str | None = None

    def send(self, text: str) -> None:
        from wsproto.events import TextMessage

        self.sock.setblocking(True)  # a few bytes; the kernel's buffer takes them at once
        try:
            self.sock.sendall(self.ws.send(TextMessage(data=text)))
        finally:
            self.sock.setblocking(False)

    def read(self, on_prediction) -> None:
        from wsproto.events import CloseConnection, Ping, RejectConnection, TextMessage

        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError as exc:
            data, self.error = b"", f"read failed: {exc}"
        self.ws.receive_data(data or None)
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self.text.append(event.data)
                if event.message_finished:
                    self._message("".join(self.text), on_prediction)
                    self.text = []
            elif isinstance(event, Ping):
                self.sock.sendall(self.ws.send(event.response()))
            elif isinstance(event, (CloseConnection, RejectConnection)):
                self.closed = True
        if not data:
            self.closed = True

    def _message(self, msg: str, on_prediction) -> None:
        if msg.startswith("0"):        # Engine.IO open: join the default namespace
            self.send("40")
        elif msg == "2":               # ping
            self.send("3")
        elif msg.startswith("40"):
            self.connected = True
        elif msg.startswith("44"):
            self.error = f"connect refused: {msg[2:200]}"
        elif msg.startswith(PREDICTION):
            on_prediction(json.loads(msg[2:])[1])


def _clients(host: str, port: int, first: int, n: int, start_at: float, stop_at: float, out) -> None:
    """One client process: clients ``first`` … ``first + n - 1`` on one selector; puts
    {"arrivals": [{wall: arrival, ...} per client], "errors": [...]}."""
    import selectors

    sel = selectors.DefaultSelector()
    arrivals, errors = [], []
    for i in range(first, first + n):
        try:
            d = _Dashboard(host, port)
        except OSError as exc:
            errors.append(f"client {i}: {exc}")
            continue
        mine: dict[float, float] = {}

        def on_prediction(p, mine=mine):
            if start_at <= p["wall"] <= stop_at:  # by capture time: every client is asked for the same set
                mine[p["wall"]] = time.time()

        sel.register(d.sock, selectors.EVENT_READ, (i, d, on_prediction))
        arrivals.append(mine)
    while time.time() < stop_at + LATE and sel.get_map():
        for key, _ in sel.select(timeout=0.2):
            i, d, on_prediction = key.data
            d.read(on_prediction)
            if d.closed or d.error:
                errors.append(f"client {i}: {d.error or 'closed by the server'}")
                sel.unregister(d.sock)
                d.sock.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    out.put({"arrivals": arrivals, "errors": errors})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(clients: int = 200, seconds: float = 60.0, start_timeout: float = 120.0) -> dict:
    port = _free_port()
    work = tempfile.mkdtemp(prefix="gm-bench-dash-")
    ramp = 15 + clients * 0.05  # connecting 200 clients takes a while; the measured span starts once all are in
    audio_file = write_files(work, 1, seconds + ramp + 60)[0]  # still playing when the span ends
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, str(ROOT / "run.py"), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", os.path.join(work, "data"), "--source", f"file:{audio_file}"]
    os.makedirs(os.path.join(work, "data"))
    with open(os.path.join(work, "data", "settings.json"), "w") as f:
        json.dump({"max_sessions_per_client": 0}, f)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    log_path = os.path.join(work, "server.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = []
    try:
        try:
            wait_until_up(url, proc, start_timeout)
        except NotUp as exc:
            raise BenchError(f"{exc}: {log_tail(log_path)}") from None
        start_at = time.time() + ramp
        stop_at = start_at + seconds
        share = [clients // PROCESSES + (i < clients % PROCESSES) for i in range(PROCESSES)]
        firsts = [sum(share[:i]) for i in range(PROCESSES)]
        procs = [ctx.Process(target=_clients, args=("127.0.0.1", port, first, n, start_at, stop_at, out))
                 for first, n in zip(firsts, share) if n]
        for p in procs:
            p.start()
        results = [out.get(timeout=stop_at - time.time() + 120) for _ in procs]
        status = proc_status(proc.pid)
    finally:
        for p in procs:
            p.join(30)
        stop_process(proc)
    errors = [e for r in results for e in r["errors"]]
    if errors:
        raise BenchError(f"{len(errors)} of {clients} clients could not connect: {errors[:3]}")
    arrivals = [a for r in results for a in r["arrivals"]]
    everything = set().union(*arrivals)
    if not everything:
        raise BenchError(f"no predictions during the run: {log_tail(log_path)}")
    missed = [len(everything - a.keys()) for a in arrivals]
    first = {wall: min(a[wall] for a in arrivals if wall in a) for wall in everything}
    return {
        "clients": len(arrivals),
        "seconds": seconds,
        "predictions": len(everything),
        "clients_with_every_prediction": sum(1 for m in missed if m == 0),
        "missed_most": max(missed),
        # capture of the window's last sample -> arrival at a client (what a dashboard's user sees)
        "latency": stats_ms([t - wall for a in arrivals for wall, t in a.items()]),
        # -> arrival at the first client: classification and the worker's turn, before any fan-out
        "first_client": stats_ms([t - wall for wall, t in first.items()]),
        # the first client's arrival -> each other client's: the fan-out to every dashboard
        "fan_out": stats_ms([t - first[wall] for a in arrivals for wall, t in a.items()]),
        "peak_rss_mb": status.get("VmHWM"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dashboards", description=__doc__)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args(argv)
    print(json.dumps(measure(clients=args.clients, seconds=args.seconds), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
