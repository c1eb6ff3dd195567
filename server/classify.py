"""Classify whole files: each window's content, and the file's genre as the mean of its music windows.

The file is read as a stream and classified a batch of windows at a time, so memory does not
grow with its length (only the per-window results are kept).
"""

from __future__ import annotations

import numpy as np

from .audio.stream_read import resampled_blocks
from .audio.window_cutter import WindowCutter
from .config import MODEL_SR, WINDOW_SAMPLES
from .model.content import CONTENT_LABELS, MUSIC, majority
from .stream.features import window_mel

BATCH = 32


def classify_file(path: str, model, hop_s: float = 1.0) -> dict:
    """Stream, window, classify; raises DecodeError for unreadable files.

    ``content`` is the majority of the windows' contents; a file that is mostly not music
    (speech, silence, noise) has ``genre: null``. The genre and probabilities average the
    music windows only (all windows when none is music).
    """
    # The windows of training and ``evaluate``: each window's log-mel on its own samples.
    windows = WindowCutter(resampled_blocks(path, MODEL_SR), max(1, int(round(hop_s * MODEL_SR))))
    starts, parts, contents, batch = [], [], [], []

    def flush() -> None:
        result = model.analyse(np.stack(batch))
        parts.append(result.probs)
        contents.extend(result.content)
        batch.clear()

    for start, samples in windows:
        starts.append(start)
        batch.append(window_mel(samples))
        if len(batch) == BATCH:
            flush()
    if batch:
        flush()
    n_samples = windows.n_samples
    padded = n_samples < WINDOW_SAMPLES
    probs = np.concatenate(parts)
    is_music = np.array([c == MUSIC for c in contents])
    mean = probs[is_music].mean(axis=0) if is_music.any() else probs.mean(axis=0)
    content = majority(contents)
    labels = list(model.labels)
    top = int(np.argmax(mean))
    return {
        "file": path,
        "content": content,
        "content_share": {c: round(contents.count(c) / len(contents), 4) for c in CONTENT_LABELS},
        "genre": labels[top] if content == MUSIC else None,
        "confidence": round(float(mean[top]), 4),
        "uncertain": bool(model.is_uncertain(mean)),
        "probabilities": {label: round(float(p), 4) for label, p in zip(labels, mean)},
        "duration": round(n_samples / MODEL_SR, 3),
        "padded": padded,
        "timeline": [
            {"t": round(min(start + WINDOW_SAMPLES, n_samples) / MODEL_SR, 3),
             "content": c,
             "genre": labels[int(np.argmax(row))] if c == MUSIC else None,
             "confidence": round(float(row.max()), 4),
             "probabilities": [round(float(p), 4) for p in row]}
            for start, row, c in zip(starts, probs, contents)
        ],
    }
