"""Probe: does the int8 timbral front-end (``server.model.quantized``) keep the genre decisions?

Not used by the server. Predicts windows of real music (default: every GTZAN clip in
``<data>/gtzan-mini`` and ``<data>/gtzan-more``, one window every 1.5 s) with the default
model in float and in int8, and reports: top-genre agreement, agreement of the shown
decision (top genre, or "uncertain" below the model's threshold), the largest and 99th
percentile change of a genre probability and a tag, and isolated batch-1 ``predict`` time
of both, measured side by side (alternating).

Run: ``.venv/bin/python scripts/experiments/probe_int8_agreement.py [data dir] [max clips]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    from server.model import fast, precision, quantized
    from server.model.registry import load_model

    argv = argv if argv is not None else sys.argv[1:]
    data = Path(argv[0]) if argv else ROOT.parent / "shared" / "data"
    limit = int(argv[1]) if len(argv) > 1 else 10 ** 6
    clips = sorted((data / "gtzan-mini").rglob("*")) + sorted((data / "gtzan-more").rglob("*"))
    clips = [c for c in clips if c.suffix in (".flac", ".wav", ".ogg", ".au")][:limit]
    model = load_model(None)
    mel = np.concatenate([quantized.track_windows([c], quantized.CHECK_HOP_S) for c in clips])
    print(f"model {model.name}, backbones {model.backbones}; {len(clips)} clips, {len(mel)} windows")
    out = {}
    for p in fast.PRECISIONS:
        with fast.precision(p):
            parts = [model.analyse(mel[i:i + 32]) for i in range(0, len(mel), 32)]
        out[p] = (np.concatenate([a.probs for a in parts]), np.concatenate([a.tags for a in parts]),
                  [c for a in parts for c in a.content])
    (p0, t0, c0), (p1, t1, c1) = out["float"], out["int8"]

    def shown(p):
        return np.where(p.max(1) < (model.uncertain_threshold or 0), -1, p.argmax(1))

    dp, dt = np.abs(p0 - p1), np.abs(t0 - t1)
    print(f"top genre agrees on {100 * np.mean(p0.argmax(1) == p1.argmax(1)):.2f}% of windows, shown decision "
          f"(genre or uncertain) on {100 * np.mean(shown(p0) == shown(p1)):.2f}%")
    print(f"|d prob| max {dp.max():.4f}, p99 {np.percentile(dp.max(1), 99):.4f}; "
          f"|d tag| max {dt.max():.4f}, p99 {np.percentile(dt.max(1), 99):.4f}")
    print(f"content (music/speech/silence/noise) agrees on {100 * np.mean([a == b for a, b in zip(c0, c1)]):.2f}%; "
          f"float called {sum(c != 'music' for c in c0)} windows not music, int8 {sum(c != 'music' for c in c1)}")
    print("compare() on these windows:", precision.compare(out["float"], out["int8"]))

    times = {"float": [], "int8": []}
    for r in range(20):
        for p in (("float", "int8") if r % 2 == 0 else ("int8", "float")):
            with fast.precision(p):
                t = time.perf_counter()
                model.predict(mel[r % len(mel)][None])
                times[p].append(time.perf_counter() - t)
    med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    print(f"isolated batch-1 predict: float {med['float']:.1f} ms, int8 {med['int8']:.1f} ms "
          f"(x{med['float'] / med['int8']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
