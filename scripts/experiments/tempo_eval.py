"""Tempo accuracy on GTZAN clips against reference tempi, split by the fault-filtered lists.

    .venv/bin/python scripts/experiments/tempo_eval.py [--data ../shared/data] [--librosa]

The second line of ours counts a clip right when the estimate or the half or double tempo it
names as likely too (``Tempo.alternative``) is; how often the alternative is named is printed.
A clip is right when the estimate is within 4 % of the reference (accuracy 1) or of its
double, half, triple or third (accuracy 2). Full 30-s clips only (gtzan-mini, gtzan-more).
``server.model.tempo`` was tuned on the ``train`` list alone; every other list is held out.
Our clips are mostly classical and pop, so the genre-balanced mean (each genre's accuracy,
averaged) is also printed: it is the better guess at the whole (balanced) collection's figure.
``--librosa`` adds librosa's default estimator for comparison.
"""

from __future__ import annotations

import argparse
import glob
import os
import time
from collections import defaultdict

import numpy as np
import soundfile as sf

from server.model.tempo import analyse_excerpts

TOLERANCE = 0.04
OCTAVES = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)


def within(est: float | None, ref: float, factors=(1.0,)) -> bool:
    return est is not None and any(abs(est - ref * f) <= TOLERANCE * ref * f for f in factors)


def read_reference(path: str) -> dict[str, float]:
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                clip, bpm = line.strip().split(",")
                out[clip] = float(bpm)
    return out


def read_splits(folder: str) -> dict[str, str]:
    out = {}
    for name in ("train", "valid", "test"):
        with open(os.path.join(folder, f"{name}_filtered.txt")) as f:
            for line in f:
                if line.strip():
                    out[os.path.basename(line.strip()).rsplit(".", 1)[0]] = name
    return out


def summary(rows: list[tuple[str, bool, bool]]) -> str:
    if not rows:
        return "no clips"
    by_genre = defaultdict(list)
    for clip, a1, a2 in rows:
        by_genre[clip.split(".")[0]].append((a1, a2))
    acc1, acc2 = np.mean([r[1] for r in rows]), np.mean([r[2] for r in rows])
    bal1 = np.mean([np.mean([a for a, _ in v]) for v in by_genre.values()])
    bal2 = np.mean([np.mean([b for _, b in v]) for v in by_genre.values()])
    return (f"{len(rows):4d} clips  acc1 {acc1:5.1%}  acc2 {acc2:5.1%}   "
            f"genre-balanced ({len(by_genre)} genres) {bal1:5.1%} / {bal2:5.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--librosa", action="store_true", help="also librosa's default estimator")
    ap.add_argument("--seconds", type=float, help="use only excerpts this long of each clip")
    ap.add_argument("--excerpts", type=int, default=1,
                    help="how many excerpts of --seconds, spread evenly over the clip (as a library reads a track)")
    ap.add_argument("--verbose", action="store_true", help="list every clip not within 4 %%")
    args = ap.parse_args()
    ref = read_reference(os.path.join(args.data, "gtzan-splits", "gtzan_tempo.csv"))
    split = read_splits(os.path.join(args.data, "gtzan-splits", "gtzan_filtered"))
    paths = sorted(glob.glob(os.path.join(args.data, "gtzan-mini", "*", "*.flac"))
                   + glob.glob(os.path.join(args.data, "gtzan-more", "*", "*.flac")))
    methods = {"ours": lambda ys, sr: (t.bpm if (t := analyse_excerpts(ys, sr)) else None),
               "ours, or its named alternative": lambda ys, sr: ((t.bpm, t.alternative)
                                                                   if (t := analyse_excerpts(ys, sr)) else None)}
    if args.librosa:
        import librosa

        methods["librosa"] = lambda ys, sr: float(librosa.feature.tempo(y=np.concatenate(ys), sr=sr)[0])
    rows = {m: defaultdict(list) for m in methods}
    seconds = {m: 0.0 for m in methods}
    audio_s, named = 0.0, 0
    for path in paths:
        clip = os.path.basename(path).rsplit(".", 1)[0]
        if clip not in ref:
            continue
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        excerpts = [y]
        if args.seconds:
            n = int(args.seconds * sr)
            gap = (len(y) - args.excerpts * n) // (args.excerpts + 1)
            excerpts = [y[gap + i * (n + gap):][:n] for i in range(args.excerpts)]
        audio_s += sum(map(len, excerpts)) / sr
        for m, fn in methods.items():
            t0 = time.perf_counter()
            est = fn(excerpts, sr)
            seconds[m] += time.perf_counter() - t0
            options = est if isinstance(est, tuple) else (est,)
            row = (clip, any(within(e, ref[clip]) for e in options),
                   any(within(e, ref[clip], OCTAVES) for e in options))
            est = options[0]
            named += len(options) > 1 and options[1] is not None
            rows[m][split.get(clip, "unlisted")].append(row)
            if args.verbose and m == "ours" and not row[1]:
                print(f"  {clip:18s} {split.get(clip, 'unlisted'):8s} ref {ref[clip]:6.1f}  est {est}")
    print(f"an alternative named for {named} of {sum(map(len, rows['ours'].values()))} clips")
    for m in methods:
        print(f"{m}: {audio_s / seconds[m]:.0f}x real time on one core")
        r = rows[m]
        for name in ("train", "valid", "test", "unlisted"):
            print(f"  {name:28s} {summary(r[name])}")
        held = r["valid"] + r["test"] + r["unlisted"]
        print(f"  {'held out (valid+test+unlisted)':28s} {summary(held)}")
        print(f"  {'all clips':28s} {summary(held + r['train'])}")


if __name__ == "__main__":
    main()
