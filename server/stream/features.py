"""Log-mel features exactly as musicnn expects them, in plain numpy.

``log_mel`` reproduces ``librosa.feature.melspectrogram(sr=16000, n_fft=512,
hop_length=256, n_mels=96, center=False)`` followed by musicnn's
``log10(10000·mel + 1)``, computed in float32 (the original's float16 step
overflows under numpy 2). A live window is 48128 samples: exactly 187 frames
with no edge padding, like the interior patches of the original's batching.
"""

from __future__ import annotations

import functools

import numpy as np

from ..config import HOP_LENGTH, MODEL_SR, N_FFT, N_MELS, WINDOW_FRAMES, WINDOW_SAMPLES

DB_FLOOR = -80.0
# A frame this far below the window's loudest is silent. Silent runs at either end of a
# window (zero padding, a track's start or end) and those of at least MIN_SILENT_FRAMES
# (0.5 s: a pause, not the rests between notes) are gaps; a window's gaps are filled
# when it has at least MIN_ACTIVE_FRAMES (0.5 s) of sound to fill them with.
SILENT_BELOW_DB = 60.0
MIN_SILENT_FRAMES = 31
MIN_ACTIVE_FRAMES = 31


@functools.cache
def _mel_basis() -> np.ndarray:
    import librosa  # imported lazily: it is slow to import and only the filters are needed

    return librosa.filters.mel(sr=MODEL_SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32).T  # (257, 96)


@functools.cache
def _window() -> np.ndarray:
    # Periodic Hann, as librosa's get_window('hann', fftbins=True).
    n = np.arange(N_FFT, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)


def n_frames(n_samples: int) -> int:
    """Frames that ``mel_power`` yields for ``n_samples`` samples."""
    return 0 if n_samples < N_FFT else 1 + (n_samples - N_FFT) // HOP_LENGTH


def mel_power(y: np.ndarray) -> np.ndarray:
    """Mel power spectrogram, shape (frames, 96), float32; un-centred frames."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected mono audio, got shape {y.shape}")
    if n_frames(y.shape[0]) == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP_LENGTH]
    spec = np.fft.rfft(frames * _window(), axis=1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    return power @ _mel_basis()


def log_compress(mel: np.ndarray) -> np.ndarray:
    """musicnn's scaling, in float32."""
    return np.log10(np.float32(10000.0) * mel + np.float32(1.0)).astype(np.float32)


def power_of(mel: np.ndarray) -> np.ndarray:
    """Mel power (float64) back from musicnn's log-mel: the inverse of ``log_compress``."""
    return (np.power(10.0, np.asarray(mel, dtype=np.float64)) - 1.0) / 1e4


def mean_power_db(mel: np.ndarray) -> np.ndarray:
    """Per log-mel window (B, frames, 96), its mean mel power in dB (floored at −200 dB)."""
    if not len(mel):
        return np.zeros(0)
    return 10.0 * np.log10(np.maximum(power_of(mel).reshape(len(mel), -1).mean(axis=1), 1e-20))


def log_mel(y: np.ndarray) -> np.ndarray:
    """musicnn input features for 16-kHz mono audio: (frames, 96) float32."""
    return log_compress(mel_power(y))


def window_mel(y: np.ndarray) -> np.ndarray:
    """The (187, 96) model input for one window of ``WINDOW_SAMPLES`` 16-kHz samples."""
    y = np.asarray(y, dtype=np.float32)
    if y.shape[0] < WINDOW_SAMPLES:
        y = np.pad(y, (WINDOW_SAMPLES - y.shape[0], 0))
    return log_mel(y[-WINDOW_SAMPLES:])[:WINDOW_FRAMES]


def _gaps(silent: np.ndarray, min_len: int) -> np.ndarray:
    """The silent frames (1-D mask) in runs that touch an end or last at least ``min_len``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]])))
    out = np.zeros_like(silent)
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start >= min_len or start == 0 or stop == len(silent):
            out[start:stop] = True
    return out


def fill_silence(mel: np.ndarray) -> np.ndarray:
    """Log-mel windows (B, 187, 96) whose silent gaps are replaced by their own sound, looped.

    A 2-s clip zero-padded to a window, the first seconds of a stream or a pause reach
    the model as part music, part silence, which it never heard in training and reads
    as another genre; the same sound looped to fill the window is classified like a full
    window. Windows without gaps (nearly all live windows) are returned as they are.
    """
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 3 or mel.shape[0] == 0:
        return mel
    loudness = mel.max(axis=2)  # log-mel rises with power: its frame maximum orders frames by loudness
    power = power_of(loudness)
    silent = power < power.max(axis=1, keepdims=True) * 10.0 ** (-SILENT_BELOW_DB / 10.0)
    out = mel
    for b in np.flatnonzero(silent.any(axis=1)):
        gap = _gaps(silent[b], MIN_SILENT_FRAMES)
        if not gap.any() or (~gap).sum() < MIN_ACTIVE_FRAMES:
            continue
        if out is mel:
            out = mel.copy()
        out[b] = np.resize(mel[b, ~gap], mel.shape[1:])  # np.resize repeats the rows cyclically
    return out


def window_starts(n_samples: int, hop: int, offset: int = 0) -> list[int]:
    """Start samples of full windows every ``hop`` samples from ``offset``; at least one."""
    last = n_samples - WINDOW_SAMPLES
    if last < offset:
        return [0]  # shorter than a window: window_mel left-pads, like the live path at start-up
    return list(range(offset, last + 1, hop))


def window_mels(y16k: np.ndarray, hop_s: float = 3.0, offset_s: float = 0.0) -> np.ndarray:
    """(B, 187, 96) log-mel windows of 16-kHz audio every ``hop_s`` from ``offset_s`` (``window_starts``),
    each computed on its own samples as the live path does."""
    hop = max(1, int(round(hop_s * MODEL_SR)))
    starts = window_starts(len(y16k), hop, int(round(offset_s * MODEL_SR)))
    return np.stack([window_mel(y16k[s:s + WINDOW_SAMPLES]) for s in starts])


def mel_to_db(mel: np.ndarray, floor: float = DB_FLOOR) -> np.ndarray:
    """Mel power to dB (ref 1.0) for display, clipped below at ``floor``."""
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return np.maximum(db, floor).astype(np.float32)
