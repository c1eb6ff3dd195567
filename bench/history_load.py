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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET

from server.subprocesses import NotUp, wait_until_up

from .common import DEMO_DIR, ROOT, BenchError, log_tail, proc_status, stats_ms

T0 = 1_700_000_000.0
SERVE = """
import ctypes, os, signal, sys

def malloc_report(*_):  # SIGUSR2: glibc's malloc_info for the bench (arenas, free bytes they keep)
    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    fp = libc.fopen(os.environ["BENCH_MALLOC_INFO"].encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)

if os.environ.get("BENCH_MALLOC_INFO"):
    signal.signal(signal.SIGUSR2, malloc_report)
from server.engine import Engine
from server.sinks.history import open_store
from server.web.app import serve
engine = Engine()
for i, path in enumerate(sys.argv[4:]):
    engine.start_source({"kind": "file", "paths": [path], "loop": True, "id": f"live-{i}"})
serve(engine, host="127.0.0.1", port=int(sys.argv[2]), upload_dir=sys.argv[3],
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


def _malloc_info(pid: int, path: str) -> dict:
    """Arenas and the free bytes glibc keeps in them (``malloc_info`` in the server), or {}."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.kill(pid, signal.SIGUSR2)
    for _ in range(50):
        time.sleep(0.1)
        try:
            root = ET.parse(path).getroot()
            break
        except (OSError, ET.ParseError):
            continue
    else:
        return {}
    heaps = root.findall("heap")
    free = sum(int(t.get("size")) for t in root.findall("total") if t.get("type") in ("fast", "rest"))
    return {"arenas": len(heaps), "free_kept_mb": round(free / 2**20, 1),
            "mapped_mb": round(sum(int(t.get("size")) for t in root.findall("system") if t.get("type") == "current")
                               / 2**20, 1)}


def _round(url: str, pid: int, urls: list[str], settle_s: float, info: str) -> dict:
    """One attack: every list at once, read whole; RSS peak meanwhile and after ``settle_s``."""
    peak, small, sizes, done = 0.0, [], [], threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc_status(pid)["VmRSS"])
            t = time.perf_counter()
            _read_all(url + "/api/history/status", 30)
            small.append(time.perf_counter() - t)
            done.wait(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t = time.perf_counter()
    errors: list[str] = []

    def fetch(u):
        try:
            sizes.append(_read_all(u))
        except OSError as exc:  # refused (503) or cut: the figures would not be the attack's
            errors.append(str(exc))

    threads = [threading.Thread(target=fetch, args=(u,)) for u in urls]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lists_s = time.perf_counter() - t
    done.set()
    sampler.join()
    if errors:
        raise BenchError(f"{len(errors)} of {len(urls)} lists failed, e.g. {errors[0]}")
    time.sleep(settle_s)  # the request threads end after IDLE_THREAD s without work
    return {"lists_s": round(lists_s, 1), "bytes_per_history_list": max(sizes) if sizes else 0,
            "rss_peak_sampled": peak, "rss_after": proc_status(pid)["VmRSS"], "small_request_ms": stats_ms(small),
            "malloc_after": _malloc_info(pid, info)}


def measure(n: int, clients: int, rounds: int = 1, live: int = 0, settle_s: float = 8.0) -> dict:
    """The attack ``rounds`` times on a history of ``n`` windows (``live`` looping demo sources
    classified meanwhile); RSS in MB: idle, per round the sampled peak and after settling."""
    work = tempfile.mkdtemp(prefix="gm-bench-history-")
    try:
        return _measure(work, n, clients, rounds, live, settle_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(work: str, n: int, clients: int, rounds: int, live: int, settle_s: float) -> dict:
    path = os.path.join(work, "history.sqlite")
    started = time.perf_counter()
    fill(path, n)
    fill_s = time.perf_counter() - started
    media = sorted(str(p) for p in DEMO_DIR.glob("*.ogg"))
    if live and not media:
        raise BenchError(f"no demo audio in {DEMO_DIR} for --live")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = os.path.join(work, "server.log")
    info = os.path.join(work, "malloc.xml")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, path, str(port), os.path.join(work, "uploads")]
                                + [media[i % len(media)] for i in range(live)],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT), BENCH_MALLOC_INFO=info))
    try:
        try:
            wait_until_up(url, proc)
        except NotUp as exc:
            raise BenchError(f"{exc}:\n{log_tail(log_path)}") from None
        q = f"source=radio&from={T0}&to={T0 + n}"
        for kind in ("history", "segments"):  # what the first request imports is not the lists' cost
            _read_all(f"{url}/api/{kind}?{q}&limit=10")
        time.sleep(max(1.0, settle_s if live else 1.0))  # live: the model loaded and running
        idle, idle_malloc = proc_status(proc.pid)["VmRSS"], _malloc_info(proc.pid, info)
        urls = [f"{url}/api/history?{q}&limit=100000"] * clients + [f"{url}/api/segments?{q}&limit=100000"] * clients
        runs = [_round(url, proc.pid, urls, settle_s, info) for _ in range(rounds)]
        hwm = proc_status(proc.pid)["VmHWM"]
    finally:
        proc.terminate()
        proc.wait(30)
    return {"windows": n, "clients": clients, "live_sources": live, "fill_s": round(fill_s, 1),
            "rss_mb": {"idle": idle, "high_water": hwm,
                       "peak_sampled": [r.pop("rss_peak_sampled") for r in runs],
                       f"after_{settle_s:g}s": [r.pop("rss_after") for r in runs]},
            "malloc_idle": idle_malloc, "rounds": runs}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.history_load", description=__doc__)
    ap.add_argument("--windows", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--live", type=int, default=0, help="looping demo sources classified meanwhile")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds after a round before RSS is read")
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.windows, args.clients, args.rounds, args.live, args.settle), indent=2))


if __name__ == "__main__":
    main()
