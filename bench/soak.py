"""Memory soak: minutes of audio fed faster than real time through the Engine; RSS over time.

Run as ``python -m bench.soak --minutes 20`` (a fresh process, so nothing else it
did inflates the figures); prints one JSON line. The engine's ``fast`` mode is
lossless: the file source waits for the worker, so every window is classified.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from .common import ROOT, BenchError, proc_status


def soak(audio_file: str, minutes: float, hop: float = 1.0, warm_minutes: float = 0.5) -> dict:
    from server.engine import Engine
    from server.model.registry import load_model

    model = load_model(None)
    engine = Engine(hop=hop, fast=True)
    engine.use_model(model)
    done = threading.Event()
    samples: list[tuple[float, float]] = []  # (audio minutes, RSS MB)
    state = {"windows": 0, "rss_warm": None}

    class Sink:
        def on_prediction(self, window):
            state["windows"] += 1
            t_min = window.t / 60.0
            if state["windows"] % 30 == 0:
                rss = proc_status().get("VmRSS")
                samples.append((round(t_min, 2), rss))
                if state["rss_warm"] is None and t_min >= warm_minutes:
                    state["rss_warm"] = rss
            if t_min >= minutes:
                done.set()

    engine.add_sink(Sink())
    engine.worker.start()
    t0 = time.monotonic()
    engine.start_source({"kind": "file", "paths": [audio_file], "loop": True, "id": "soak"})
    rss_start = proc_status().get("VmRSS")
    if not done.wait(timeout=max(600.0, minutes * 60)):
        raise BenchError(f"the soak did not reach {minutes} minutes of audio in time")
    wall = time.monotonic() - t0
    pipeline = engine.pipeline("soak")
    skipped = pipeline.skipped
    engine.shutdown()
    engine.worker.stop(timeout=5)
    end = proc_status()
    warm = state["rss_warm"] or (samples[0][1] if samples else rss_start)
    return {
        "audio_minutes": minutes,
        "wall_s": round(wall, 1),
        "x_realtime": round(minutes * 60 / wall, 1),
        "windows": state["windows"],
        "skipped": skipped,
        "rss_mb_after_model": rss_start,
        "rss_mb_warm": warm,
        "rss_mb_end": end.get("VmRSS"),
        "rss_growth_mb": round(end.get("VmRSS", 0) - warm, 1) if warm else None,
        "peak_rss_mb": end.get("VmHWM"),
        "samples": samples,
    }


def run_subprocess(audio_file: str, minutes: float, timeout: float = 900.0) -> dict:
    """Run the soak in a fresh interpreter and return its result."""
    cmd = [sys.executable, "-m", "bench.soak", "--minutes", str(minutes), "--file", audio_file]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        raise BenchError(f"the soak failed (code {r.returncode}): {r.stderr[-1500:]}")
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--file", required=True)
    args = ap.parse_args()
    print(json.dumps(soak(args.file, args.minutes, warm_minutes=min(1.0, args.minutes / 4))), flush=True)


if __name__ == "__main__":
    main()
