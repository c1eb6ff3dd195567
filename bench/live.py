"""Live cost: many real-time file sources through one in-process Engine.

CPU per source is the process's CPU seconds per second of audio per source
(after a warm-up, so model loading and the first windows are not counted: their
first windows — nothing to reuse yet — take a few seconds to clear).
The sources' starts are spread evenly over one hop, so their hop grids are
staggered, as stations started one by one are: the worker gets a steady stream
of small batches rather than every window of every source at the same instant.
Skipped windows are those the scheduler dropped because the worker was behind.
"""

from __future__ import annotations

import threading
import time

from server.config import WINDOW_SECONDS

from .common import cpu_seconds


class _Counter:
    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def on_prediction(self, window):
        with self.lock:
            self.n += 1


def run_sources(model, files: list[str], n_sources: int, seconds: float, hop: float = 1.0,
                warmup: float | None = None, stagger: bool = True) -> dict:
    """Run ``n_sources`` real-time looping file sources for ``seconds`` after a warm-up."""
    from server.engine import Engine

    warmup = WINDOW_SECONDS + 7.0 if warmup is None else warmup
    engine = Engine(hop=hop)
    engine.use_model(model)
    counter = _Counter()
    engine.add_sink(counter)
    engine.worker.start()
    try:
        for i in range(n_sources):
            if stagger and i:
                time.sleep(hop / n_sources)
            engine.start_source({"kind": "file", "paths": [files[i % len(files)]], "loop": True,
                                 "id": f"bench-{i}"})
        time.sleep(warmup)
        pipelines = engine.sources.pipelines()
        skipped0 = sum(p.skipped for p in pipelines)
        windows0 = counter.n
        cpu0, t0 = cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(), time.monotonic()
        skipped = sum(p.skipped for p in pipelines) - skipped0
        windows = counter.n - windows0
        errors = [p.source.error for p in pipelines if p.source.state == "error"]
    finally:
        engine.shutdown()
        engine.worker.stop(timeout=5)
    audio_s = (t1 - t0) * n_sources
    return {
        "sources": n_sources,
        "seconds": round(t1 - t0, 2),
        "cpu_s": round(cpu1 - cpu0, 3),
        "cpu_per_audio_s": round((cpu1 - cpu0) / audio_s, 4),
        "cpu_cores_used": round((cpu1 - cpu0) / (t1 - t0), 3),
        "windows": windows,
        "expected_windows": int((t1 - t0) / hop * n_sources),
        "skipped": skipped,
        "errors": errors,
    }


def max_sources(model, files: list[str], seconds: float, hint_ok: int = 1, hint_fail: int | None = None,
                limit: int = 128, max_trials: int = 4, hop: float = 1.0) -> dict:
    """Largest number of real-time sources that run ``seconds`` without a skipped window (bisection).

    ``hint_ok``/``hint_fail`` (from shorter runs) bound the search; at most ``max_trials`` runs.
    """
    lo, hi = max(0, hint_ok), (hint_fail if hint_fail else limit + 1)
    trials = []
    # Confirm the lower bound at full length first: a short run can miss a late skip.
    candidates = [lo] if lo >= 1 else []
    while len(trials) < max_trials:
        n = candidates.pop(0) if candidates else (lo + hi) // 2
        if n < 1 or n >= hi or (trials and n <= lo):
            break
        r = run_sources(model, files, n, seconds, hop=hop)
        ok = r["skipped"] == 0 and not r["errors"] and r["windows"] >= 0.9 * r["expected_windows"]
        trials.append({"sources": n, "ok": ok, "skipped": r["skipped"], "windows": r["windows"],
                       "cpu_cores_used": r["cpu_cores_used"]})
        if ok:
            lo = n
        else:
            hi = n
            if n == trials[0]["sources"] and not ok and len(trials) == 1:
                lo = 0
        if hi - lo <= 1:
            break
    return {"max_sources": lo, "first_failing": hi if hi <= limit else None, "seconds": seconds,
            "trials": trials, "exact": hi - lo <= 1}
