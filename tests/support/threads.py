"""Calls started at the same moment, for races (tests and scripts/qa/soak.py)."""

from __future__ import annotations

import threading


def together(*calls, timeout: float = 60.0) -> list:
    """Run the calls at the same moment, each on its own thread; their results (or exceptions), in order."""
    barrier, out = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i, fn):
        barrier.wait()
        try:
            out[i] = fn()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return out
