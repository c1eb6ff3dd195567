"""Tempo accuracy on GTZAN clips against reference tempi, split by the fault-filtered lists.

    .venv/bin/python scripts/experiments/tempo_eval.py [--data ../shared/data] [--librosa]
        [--seconds 8 --excerpts 3] [--verbose]

``bench.tempo`` does the counting (``make bench`` reports the same figures): a clip is right
within 4 % of the reference (accuracy 1), or of its double, half, triple or third (accuracy 2).
``server.model.tempo`` was tuned on the ``train`` list alone; every other list is held out.
Besides ours: ours counting the half or double tempo it names as likely too
(``Tempo.alternative``), and with ``--librosa`` librosa's default estimator.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.tempo import DATA, HELD_OUT, accuracy
from server.model.fast import limit_blas_threads
from server.model.tempo import analyse_excerpts


def line(name: str, s: dict | None) -> str:
    if s is None:
        return f"  {name:10s} no clips"
    return (f"  {name:10s} {s['clips']:4d} clips  acc1 {s['acc1']:6.1%}  acc2 {s['acc2']:6.1%}   "
            f"genre-balanced ({s['genres']} genres) {s['balanced_acc1']:6.1%} / {s['balanced_acc2']:6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--librosa", action="store_true", help="also librosa's default estimator")
    ap.add_argument("--seconds", type=float, help="use only excerpts this long of each clip")
    ap.add_argument("--excerpts", type=int, default=1,
                    help="how many excerpts of --seconds, spread evenly over the clip (as a library reads a track)")
    ap.add_argument("--verbose", action="store_true", help="list every clip ours gets wrong")
    args = ap.parse_args()
    limit_blas_threads()  # as the server does: spinning BLAS threads only cost here
    methods = {
        "ours": lambda ys, sr: (t.bpm if (t := analyse_excerpts(ys, sr)) else None),
        "ours or its named alternative": lambda ys, sr: ((t.bpm, t.alternative)
                                                         if (t := analyse_excerpts(ys, sr)) else None),
    }
    if args.librosa:
        import librosa

        methods["librosa default"] = lambda ys, sr: float(librosa.feature.tempo(y=np.concatenate(ys), sr=sr)[0])
    show = lambda clip, split, ref, est: print(f"  {clip:18s} {split:8s} ref {ref:6.1f}  est {est}")
    for name, fn in methods.items():
        t0 = time.perf_counter()
        wrong = show if args.verbose and name == "ours" else None
        acc = accuracy(fn, args.data, args.seconds, args.excerpts, wrong=wrong)
        print(f"{name} ({time.perf_counter() - t0:.0f} s, decoding included)")
        for split in ("train", *HELD_OUT, "held_out", "all"):
            print(line(split, acc[split]))


if __name__ == "__main__":
    main()
