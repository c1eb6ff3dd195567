"""Tempo (BPM) of an excerpt of music."""

from __future__ import annotations

import numpy as np


def estimate_tempo(y: np.ndarray, sr: int) -> float | None:
    """BPM of mono float32 audio ``y`` at ``sr`` Hz, or None when there is no beat."""
    import librosa  # slow to import: only when a tempo is asked for

    y = np.asarray(y, dtype=np.float32)
    if y.size < sr or not np.any(y):
        return None
    bpm = float(np.atleast_1d(librosa.feature.tempo(y=y, sr=sr))[0])
    return bpm if np.isfinite(bpm) and bpm > 0 else None
