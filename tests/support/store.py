"""Helpers for history tests: prediction payloads, a filled history, a killed writer, a tiny tmpfs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from server.monitor.classified import ClassifiedWindow
from server.sinks.payloads import window_from_payload
from tests.support.wait import poll

ROOT = Path(__file__).resolve().parents[2]

LABELS = ["blues", "classical", "jazz", "rock"]


def prediction(source: str, wall: float, top: str = "jazz", confidence: float = 0.7, t: float | None = None,
               uncertain: bool = False, **extra) -> ClassifiedWindow:
    """A classified window, given as its `prediction` payload (docs/events.md), whose top genre is ``top``."""
    rest = (1.0 - confidence) / (len(LABELS) - 1)
    probs = [round(confidence if lab == top else rest, 5) for lab in LABELS]
    p = {"source": source, "t": wall - 1000.0 if t is None else t, "wall": wall, "model": "test",
         "labels": list(LABELS), "probs": probs, "top": top, "confidence": confidence,
         "uncertain": uncertain, "tags": [], "counters": {"windows": 0, "skipped": 0, "overflows": 0}}
    p.update(extra)
    return window_from_payload(p)


@contextlib.contextmanager
def tiny_tmpfs(size: str = "512k"):
    """Mount a tmpfs of ``size`` (needs root); yields its path, or None when mounting is not allowed."""
    path = tempfile.mkdtemp(prefix="genre-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(path)
        yield None, (r.stderr or r.stdout).strip()
        return
    try:
        yield path, None
    finally:
        subprocess.run(["umount", "-l", path], capture_output=True)
        with contextlib.suppress(OSError):
            os.rmdir(path)


def fill_disk(directory: str) -> str:
    """Write a file until the filesystem is full; return its path."""
    path = os.path.join(directory, "filler")
    with open(path, "wb", buffering=0) as f:
        try:
            while f.write(b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: full
            pass
    return path


def fill_history(store, t0: float) -> None:
    """30 windows of "radio-1" from ``t0`` (jazz, then rock), two segments, an alert, a source, one recent window."""
    for i in range(30):
        store.on_prediction(prediction("radio-1", t0 + i, top="jazz" if i < 20 else "rock",
                                       smoothed=[0.1, 0.1, 0.7, 0.1], level_db=-20.0))
    store.on_prediction(prediction("recent", time.time() - 60))
    store.on_segment({"source": "radio-1", "genre": "jazz", "start": 0.0, "end": 20.0, "start_wall": t0,
                      "end_wall": t0 + 20, "mean_confidence": 0.7, "windows": 20, "open": False})
    store.on_segment({"source": "radio-1", "genre": "rock", "start": 20.0, "end": 29.0, "start_wall": t0 + 20,
                      "end_wall": t0 + 29, "mean_confidence": 0.7, "windows": 10, "open": True})
    store.on_alert({"source": "radio-1", "rule": 0, "type": "unexpected_genre", "message": "rock dominates",
                    "t": 25.0, "wall": t0 + 25, "state": "firing"})
    store.on_sources({"sources": [{"id": "radio-1", "kind": "stream", "label": "Radio, \"one\"",
                                   "state": "running"}]})
    assert store.flush()


def fill_radio_history(path, n: int, t0: float) -> None:
    """A history file of ``n`` windows of source "radio" from ``t0``, 0.5 s apart, a segment every 100."""
    from server.sinks.history import HistoryStore

    s = HistoryStore(path, retention_days=1e6, queue_size=n + 10)
    for i in range(n):
        s.on_prediction(prediction("radio", t0 + i * 0.5, top="jazz" if i % 7 else "rock", level_db=-20.0))
    for i in range(n // 100):
        s.on_segment({"source": "radio", "genre": "jazz", "start": i * 50.0, "end": i * 50.0 + 49,
                      "start_wall": t0 + i * 50, "end_wall": t0 + i * 50 + 49, "mean_confidence": 0.7,
                      "windows": 100, "open": False})
    assert s.flush(timeout=120)
    s.close()


def fill_for_retention(store, now: float, day: float = 86400.0) -> None:
    """Windows and alerts of "a" 3, 2 and 0.5 days and 10 s before ``now``, a segment ending 3 days
    before and one still overlapping the last day, and a window of "gone" 5 days before."""
    for wall in (now - 3 * day, now - 2 * day, now - 0.5 * day, now - 10):
        store.on_prediction(prediction("a", wall))
        store.on_alert({"source": "a", "rule": 0, "type": "silence", "message": "quiet", "t": 1.0,
                        "wall": wall, "state": "firing"})
    store.on_segment({"source": "a", "genre": "jazz", "start": 0, "end": 10, "start_wall": now - 3 * day,
                      "end_wall": now - 3 * day + 10, "mean_confidence": 0.8, "windows": 10, "open": False})
    store.on_segment({"source": "a", "genre": "rock", "start": 0, "end": 10, "start_wall": now - 2 * day,
                      "end_wall": now - 10, "mean_confidence": 0.8, "windows": 10, "open": False})
    store.on_prediction(prediction("gone", now - 5 * day))
    store.flush()


def flood(store, n: int) -> int:
    """Queue ``n`` windows of "a" as fast as possible; return how many were stored."""
    for i in range(n):
        store.on_prediction(prediction("a", 1000.0 + i))
    store.flush()
    return len(store.windows("a", limit=100000))


KILL_CHILD = textwrap.dedent("""
    import sys, time
    from server.sinks.history import HistoryStore
    from tests.support.store import prediction
    store = HistoryStore(sys.argv[1], commit_interval=0.5)
    queued = []
    for i in range(600):  # ~30 s at most; the parent kills it after ~3 s
        wall = round(time.time(), 3)
        store.on_prediction(prediction("killed", wall, t=i * 0.05))
        queued.append(wall)
        old = [w for w in queued if w <= time.time() - 1.2]
        print(f"queued {wall!r}", flush=True)
        if old:
            print(f"old {old[-1]!r}", flush=True)
        time.sleep(0.05)
""")


def kill_writer_and_check(target: str, open_reader) -> None:
    """A child writes ~20 windows/s to history ``target``; ``kill -9`` it after ~3 s, then
    check (with the store ``open_reader()`` returns) that every window older than 1 s is there."""
    child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, target], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(child.stdout.readline, "")), daemon=True)
    reader.start()
    poll(lambda: sum(ln.startswith("queued") for ln in list(lines)) >= 60, 60)  # ~3 s of predictions at ~20/s
    kill_time = time.time()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    reader.join(5)
    queued = [float(ln.split()[1]) for ln in lines if ln.startswith("queued")]
    olds = [float(ln.split()[1]) for ln in lines if ln.startswith("old")]
    assert len(queued) >= 60 and olds, "the child did not run long enough"

    store = open_reader()
    stored = {r["wall"] for r in store.windows("killed", limit=100000)}
    store.close()
    expected = [w for w in queued if w <= kill_time - 1.0]
    missing = [w for w in expected if w not in stored]
    assert not missing, f"{len(missing)} of {len(expected)} windows older than 1 s lost, e.g. {missing[:3]}"
    assert olds[-1] in stored and len(expected) >= 40
