"""Tempo: what an estimate costs (a track's excerpts, a live window) and how often it is right.

Accuracy is measured on the full GTZAN clips of the research data (``../shared/data`` beside
the checkout; skipped when it is not there) against the reference tempi: within 4 % of the
reference (accuracy 1) or of its double, half, triple or third (accuracy 2). The estimator's
constants were chosen on the train list of the fault-filtered split; every other clip is held out.
Our clips are mostly classical and pop, so the genre-balanced mean is also given: the better
guess at the balanced collection's figure.
"""

from __future__ import annotations

import glob
import os
import time
from collections import defaultdict

import numpy as np

from .common import DEMO_DIR, ROOT, stats_ms

DATA = ROOT.parent / "shared" / "data"
TOLERANCE = 0.04
OCTAVES = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
HELD_OUT = ("valid", "test", "unlisted")


def within(est: float | None, ref: float, factors=(1.0,)) -> bool:
    return est is not None and any(abs(est - ref * f) <= TOLERANCE * ref * f for f in factors)


def read_reference(path) -> dict[str, float]:
    """``clip,bpm`` lines (``#`` comments) as {clip: bpm}."""
    with open(path) as f:
        return {clip: float(bpm) for clip, bpm in
                (line.strip().split(",") for line in f if line.strip() and not line.startswith("#"))}


def read_splits(folder) -> dict[str, str]:
    """{clip: "train" | "valid" | "test"} from the fault-filtered split's lists."""
    out = {}
    for name in ("train", "valid", "test"):
        with open(os.path.join(folder, f"{name}_filtered.txt")) as f:
            out.update((os.path.basename(line.strip()).rsplit(".", 1)[0], name) for line in f if line.strip())
    return out


def gtzan_clips(data=DATA):
    """(clip, split, reference BPM, mono audio, sr) of every full GTZAN clip in the data."""
    import soundfile as sf

    ref = read_reference(os.path.join(data, "gtzan-splits", "gtzan_tempo.csv"))
    split = read_splits(os.path.join(data, "gtzan-splits", "gtzan_filtered"))
    for path in sorted(glob.glob(os.path.join(data, "gtzan-mini", "*", "*.flac"))
                       + glob.glob(os.path.join(data, "gtzan-more", "*", "*.flac"))):
        clip = os.path.basename(path).rsplit(".", 1)[0]
        if clip in ref:
            y, sr = sf.read(path, dtype="float32", always_2d=True)
            yield clip, split.get(clip, "unlisted"), ref[clip], y.mean(axis=1), sr


def excerpts_of(y: np.ndarray, sr: int, seconds: float | None, count: int = 1) -> list[np.ndarray]:
    """``count`` excerpts of ``seconds`` spread evenly over ``y`` (as a library reads a track); all of it without ``seconds``."""
    if not seconds:
        return [y]
    n = int(seconds * sr)
    gap = max(0, (len(y) - count * n) // (count + 1))
    return [y[gap + i * (n + gap):][:n] for i in range(count)]


def summary(rows: list[tuple[str, bool, bool]]) -> dict | None:
    """Accuracy 1 and 2 of ``(clip, right, right up to an octave)`` rows, also averaged over genres."""
    if not rows:
        return None
    by_genre = defaultdict(list)
    for clip, a1, a2 in rows:
        by_genre[clip.split(".")[0]].append((a1, a2))
    return {"clips": len(rows), "acc1": round(float(np.mean([r[1] for r in rows])), 3),
            "acc2": round(float(np.mean([r[2] for r in rows])), 3), "genres": len(by_genre),
            "balanced_acc1": round(float(np.mean([np.mean([a for a, _ in v]) for v in by_genre.values()])), 3),
            "balanced_acc2": round(float(np.mean([np.mean([b for _, b in v]) for v in by_genre.values()])), 3)}


def accuracy(estimate, data=DATA, seconds: float | None = None, count: int = 1, wrong=None) -> dict:
    """Summaries by split list of ``estimate(excerpts, sr)`` → a BPM, a tuple of BPMs (any may be
    right) or None; ``wrong(clip, split, ref, est)`` is called for each clip not within 4 %."""
    rows = defaultdict(list)
    for clip, split, ref, y, sr in gtzan_clips(data):
        est = estimate(excerpts_of(y, sr, seconds, count), sr)
        options = est if isinstance(est, tuple) else (est,)
        row = (clip, any(within(e, ref) for e in options), any(within(e, ref, OCTAVES) for e in options))
        rows[split].append(row)
        if wrong is not None and not row[1]:
            wrong(clip, split, ref, est)
    out = {name: summary(rows[name]) for name in ("train", *HELD_OUT)}
    out["held_out"] = summary([r for name in HELD_OUT for r in rows[name]])
    out["all"] = summary([r for v in rows.values() for r in v])
    return out


def cost(repeats: int = 5) -> dict:
    """ms per estimate: a 30-s excerpt, three 8-s excerpts, and one live window (hop 1 s) with its
    re-estimate; on one core, demo audio at 44.1 kHz, with one BLAS thread as in the server."""
    from server.audio.decode import decode
    from server.model.fast import limit_blas_threads
    from server.model.tempo import LiveTempo, analyse_excerpts, analyse_tempo

    limit_blas_threads()

    y, sr = decode(str(DEMO_DIR / "04-lincity.ogg"))
    analyse_tempo(y[:10 * sr], sr)  # warm up: the mel filters are made once
    whole, parts, live = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        analyse_tempo(y[:30 * sr], sr)
        t1 = time.perf_counter()
        analyse_excerpts(excerpts_of(y, sr, 8.0, 3), sr)
        whole.append(t1 - t0)
        parts.append(time.perf_counter() - t1)
    tracker = LiveTempo()
    for end in range(3 * sr, len(y) + 1, sr):
        t0 = time.perf_counter()
        tracker.update(end, y[end - 3 * sr:end], sr)
        live.append(time.perf_counter() - t0)
    return {"excerpt_30s": stats_ms(whole), "excerpts_3x8s": stats_ms(parts), "live_window": stats_ms(live[15:]),
            "x_realtime_30s": round(30.0 / float(np.median(whole)), 1)}


def measure(data=DATA) -> dict:
    from server.model.tempo import analyse_excerpts

    out = {"cost": cost()}
    if not os.path.isdir(os.path.join(data, "gtzan-splits")):
        out["accuracy"] = None  # no research data here
        return out
    ours = lambda ys, sr: (t.bpm if (t := analyse_excerpts(ys, sr)) else None)
    out["accuracy"] = {"whole_clip": accuracy(ours, data), "excerpts_3x8s": accuracy(ours, data, 8.0, 3)}
    return out
