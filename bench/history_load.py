"""``python -m bench.history_load``: a server's memory and a small request's latency while
concurrent clients read long history lists.

A history of ``--windows`` windows (one source, 1 s apart, a segment every 50) is written,
a server (the web tier and the history, no model) started on it, and ``--clients`` clients
each ``GET /api/history?limit=100000`` over the whole range and as many ``/api/segments``
at once, reading every byte. Meanwhile the server's RSS is sampled and a small request
(``/api/history/status``) timed every 100 ms. Prints JSON: RSS idle / peak / after (MB),
the small request's latency (ms), the time the lists took.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from .common import ROOT, proc_status, stats_ms

T0 = 1_700_000_000.0
SERVE = """
import sys
from server.engine import Engine
from server.sinks.history import open_store
from server.web.app import serve
serve(Engine(), host="127.0.0.1", port=int(sys.argv[2]), upload_dir=sys.argv[3],
      store=open_store(sys.argv[1], retention_days=1e6))
"""


def fill(path: str, n: int) -> None:
    from server.sinks.history import HistoryStore
    from server.sinks.payloads import window_from_payload

    labels = ["blues", "classical", "jazz", "rock"]
    store = HistoryStore(path, retention_days=1e6, queue_size=20000)
    for i in range(n):
        top = labels[(i // 50) % 4]
        store.on_prediction(window_from_payload({
            "source": "radio", "t": float(i), "wall": T0 + i, "model": "bench", "labels": labels,
            "probs": [0.7 if lab == top else 0.1 for lab in labels], "top": top, "confidence": 0.7,
            "uncertain": False, "tags": [], "smoothed": [0.7 if lab == top else 0.1 for lab in labels],
            "level_db": -20.0, "counters": {"windows": i, "skipped": 0, "overflows": 0}}))
        if i % 50 == 49:
            store.on_segment({"source": "radio", "genre": top, "start": i - 49.0, "end": float(i),
                              "start_wall": T0 + i - 49, "end_wall": T0 + i, "mean_confidence": 0.7,
                              "windows": 50, "open": False})
        if i % 10000 == 9999:
            store.flush(timeout=300)
    store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_all(url: str, timeout: float = 600.0) -> int:
    n = 0
    with urllib.request.urlopen(url, timeout=timeout) as r:
        while chunk := r.read(1 << 16):
            n += len(chunk)
    return n


def measure(n: int, clients: int) -> dict:
    work = tempfile.mkdtemp(prefix="gm-bench-history-")
    path = os.path.join(work, "history.sqlite")
    started = time.perf_counter()
    fill(path, n)
    fill_s = time.perf_counter() - started
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "server.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVE, path, str(port), os.path.join(work, "uploads")],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _read_all(url + "/api/history/status", 2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.3)
        q = f"source=radio&from={T0}&to={T0 + n}"
        for kind in ("history", "segments"):  # what the first request imports is not the lists' cost
            _read_all(f"{url}/api/{kind}?{q}&limit=10")
        time.sleep(1.0)
        idle = proc_status(proc.pid)["VmRSS"]
        urls = [f"{url}/api/history?{q}&limit=100000"] * clients + [f"{url}/api/segments?{q}&limit=100000"] * clients
        peak, small, done = idle, [], threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, proc_status(proc.pid)["VmRSS"])
                t = time.perf_counter()
                _read_all(url + "/api/history/status", 30)
                small.append(time.perf_counter() - t)
                done.wait(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        sizes: list[int] = []
        t = time.perf_counter()
        threads = [threading.Thread(target=lambda u=u: sizes.append(_read_all(u))) for u in urls]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        lists_s = time.perf_counter() - t
        done.set()
        sampler.join()
        time.sleep(2.0)
        after, hwm = proc_status(proc.pid)["VmRSS"], proc_status(proc.pid)["VmHWM"]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    return {"windows": n, "clients": clients, "fill_s": round(fill_s, 1), "lists_s": round(lists_s, 1),
            "bytes_per_history_list": max(sizes) if sizes else 0,
            "rss_mb": {"idle": idle, "peak_sampled": peak, "high_water": hwm, "after": after},
            "small_request_ms": stats_ms(small)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.history_load", description=__doc__)
    ap.add_argument("--windows", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=10)
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.windows, args.clients), indent=2))


if __name__ == "__main__":
    main()
