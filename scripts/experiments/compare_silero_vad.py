"""Silero VAD against the content head: how often each calls music windows speech.

    .venv/bin/pip install --no-deps silero-vad     # MIT; only its ONNX model is used (onnxruntime)
    .venv/bin/python scripts/experiments/compare_silero_vad.py [--data ../shared/data]

A 3-s window (hop 3 s) counts as speech for Silero when the mean of its 32-ms speech
probabilities is at least ``--threshold``. Speech: every third LibriSpeech utterance;
music: the full GTZAN clips (gtzan-mini, gtzan-more). Silero finds a voice, and a singer or
a rapper is one, so it cannot tell talk from music on its own.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np

from server.training.content import load16
from server.training.dataset import list_tracks

CHUNK, CONTEXT, PER_WINDOW = 512, 64, 94  # samples at 16 kHz; 94 chunks ≈ 3 s


def silero_session():
    import importlib.util

    import onnxruntime as ort

    spec = importlib.util.find_spec("silero_vad")  # not imported: its package imports torch
    if spec is None or not spec.submodule_search_locations:
        sys.exit("silero-vad is not installed: .venv/bin/pip install --no-deps silero-vad")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "silero_vad.onnx")

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts)


def speech_probs(session, y: np.ndarray) -> np.ndarray:
    """Silero's speech probability of every 32-ms chunk, run as a stream (its state carried)."""
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, CONTEXT), np.float32)
    out = []
    for s in range(0, len(y) - CHUNK + 1, CHUNK):
        x = np.concatenate([context, y[None, s:s + CHUNK]], axis=1).astype(np.float32)
        p, state = session.run(None, {"input": x, "state": state, "sr": np.array(16000, np.int64)})
        context = x[:, -CONTEXT:]
        out.append(float(p[0, 0]))
    return np.array(out)


def window_means(p: np.ndarray) -> list[float]:
    if len(p) < PER_WINDOW:
        return [float(p.mean())] if len(p) else []
    return [float(p[s:s + PER_WINDOW].mean()) for s in range(0, len(p) - PER_WINDOW + 1, PER_WINDOW)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args(argv)
    session = silero_session()
    windows: dict[str, list[float]] = {}
    for path in sorted(glob.glob(os.path.join(args.data, "speech", "librispeech", "*.flac")))[::3]:
        windows.setdefault("speech", []).extend(window_means(speech_probs(session, load16(path))))
    for folder in ("gtzan-mini", "gtzan-more"):
        for t in list_tracks(os.path.join(args.data, folder)):
            windows.setdefault(t.label, []).extend(window_means(speech_probs(session, load16(t.path))))
    print(f"windows called speech by Silero VAD (mean chunk probability ≥ {args.threshold}):")
    for name, values in windows.items():
        print(f"  {name:>10}  {np.mean(np.array(values) >= args.threshold):.3f}  ({len(values)} windows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
