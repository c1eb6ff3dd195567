"""Classify whole files: a file's genre is the mean of its windows' probabilities."""

from __future__ import annotations

import numpy as np

from .audio.decode import decode
from .audio.resample import resample
from .config import HOP_LENGTH, MODEL_SR, WINDOW_SAMPLES
from .features import log_mel, patches

BATCH = 32


def classify_file(path: str, model, hop_s: float = 1.0) -> dict:
    """Decode, window, classify; raises DecodeError for unreadable files."""
    y, sr = decode(path)
    y = resample(y, sr, MODEL_SR)
    padded = y.shape[0] < WINDOW_SAMPLES
    windows = patches(log_mel(y if not padded else np.pad(y, (0, WINDOW_SAMPLES - y.shape[0]))),
                      hop_frames=max(1, round(hop_s * MODEL_SR / HOP_LENGTH)))
    probs = np.concatenate([model.predict(windows[i:i + BATCH])[0] for i in range(0, len(windows), BATCH)])
    mean = probs.mean(axis=0)
    labels = list(model.labels)
    top = int(np.argmax(mean))
    hop_samples = max(1, round(hop_s * MODEL_SR / HOP_LENGTH)) * HOP_LENGTH
    return {
        "file": path,
        "genre": labels[top],
        "confidence": round(float(mean[top]), 4),
        "uncertain": bool(model.is_uncertain(mean)),
        "probabilities": {l: round(float(p), 4) for l, p in zip(labels, mean)},
        "duration": round(y.shape[0] / MODEL_SR, 3),
        "padded": padded,
        "timeline": [
            {"t": round((i * hop_samples + WINDOW_SAMPLES) / MODEL_SR, 3),
             "genre": labels[int(np.argmax(row))],
             "confidence": round(float(row.max()), 4),
             "probabilities": [round(float(p), 4) for p in row]}
            for i, row in enumerate(probs)
        ],
    }
