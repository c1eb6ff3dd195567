"""Sample-rate conversion (soxr, the resampler librosa uses by default)."""

from __future__ import annotations

import numpy as np
import soxr


def resample(x: np.ndarray, sr_in: int, sr_out: int, quality: str = "HQ") -> np.ndarray:
    """Resample 1-D float32 audio from ``sr_in`` to ``sr_out``."""
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x
    return soxr.resample(x, sr_in, sr_out, quality=quality).astype(np.float32, copy=False)
