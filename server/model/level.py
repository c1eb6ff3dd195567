"""Per-window level normalisation of log-mel windows, before the backbones.

Done on the mel power (a gain on the audio is a gain on every mel bin), so the
head sees the same thing at any input level. Log-mel in, log-mel out.
"""

from __future__ import annotations

import numpy as np

from ..stream.features import mean_power_db, power_of
from .stream_memory import StreamMemory

LEVEL_REF_DB = -6.0  # median window mean mel power of commercial music (GTZAN)
LEVEL_MAX_GAIN_DB = 30.0  # silence stays quiet instead of becoming amplified noise
# Live streams keep their gain while a window's own gain stays within this many dB
# of it, and frames keep the gain they were first normalised with (``StreamLevels``),
# so consecutive windows share identical frames, whose front-end the backbone
# computes once (``frontend.TimbralFrontEnd``).
LEVEL_HOLD_DB = 2.0


def level_gain_db(mel: np.ndarray, ref_db: float = LEVEL_REF_DB, max_gain_db: float = LEVEL_MAX_GAIN_DB) -> np.ndarray:
    """Per window, the gain (dB) that brings its mean mel power to ``ref_db``, at most ``max_gain_db``."""
    mel = np.asarray(mel, dtype=np.float32)
    return np.minimum(ref_db - mean_power_db(mel), max_gain_db)


def apply_gain(mel: np.ndarray, gain_db) -> np.ndarray:
    """Log-mel windows with their mel power scaled by ``gain_db`` (one per window)."""
    mel = np.asarray(mel, dtype=np.float32)
    if mel.shape[0] == 0:
        return mel
    gain = 10.0 ** (np.asarray(gain_db, dtype=np.float64) / 10.0)
    return np.log10(1e4 * power_of(mel) * gain[:, None, None] + 1.0).astype(np.float32)


def normalize_level(mel: np.ndarray, ref_db: float = LEVEL_REF_DB,
                    max_gain_db: float = LEVEL_MAX_GAIN_DB) -> np.ndarray:
    """Rescale each window's mel power so its mean is ``ref_db`` (log-mel in, log-mel out)."""
    return apply_gain(mel, level_gain_db(mel, ref_db, max_gain_db))


class StreamLevels:
    """Level normalisation for live streams whose consecutive windows overlap.

    A window's new frames get the stream's gain — its own exact gain
    (``level_gain_db``), or the gain in use while that stays within ``hold_db`` —
    and frames it shares with the stream's previous window keep the values they
    had there. So every frame is normalised once, consecutive windows share
    bit-identical frames, and the backbone computes their front-end once.
    Windows outside a stream (``streams`` None, or a None entry) get their exact gain.
    """

    def __init__(self, hold_db: float = LEVEL_HOLD_DB):
        self.hold_db = hold_db
        self._memory = StreamMemory()  # per stream: the last window's raw and normalised rows, its gain

    def __call__(self, mel: np.ndarray, streams=None) -> np.ndarray:
        gains = level_gain_db(mel)
        out = apply_gain(mel, gains) if streams is None else np.empty_like(mel)
        for b, item in enumerate(streams or ()):
            if item is None or item[0] is None:
                out[b] = apply_gain(mel[b:b + 1], gains[b:b + 1])[0]
                continue
            key, first = item
            prev = self._memory.get(key)
            gain = gains[b]
            if prev is not None and abs(gain - prev.extra) <= self.hold_db:
                gain = prev.extra
            new = np.ones(mel.shape[1], bool)
            found = prev and StreamMemory.overlap(prev, first, mel[b], mel.shape[1])
            if found and found[0] > 0:
                d, same = found  # rows the stream already had
                out[b, :mel.shape[1] - d][same] = prev.out[d:][same]
                new[:mel.shape[1] - d] = ~same
            out[b, new] = apply_gain(mel[b:b + 1, new], [gain])[0]
            self._memory.remember(key, first, mel[b], out[b], gain)
        return out
