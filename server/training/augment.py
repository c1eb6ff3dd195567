"""Audio conditions: how a track may reach the model live, as named, seeded transforms.

Each condition turns a decoded track (samples at its own rate) into 16-kHz audio plus
a window offset, reproducibly: the random draws are seeded by the track's content hash
and the condition's name, so a condition name is a valid cache key.

- ``clean``: decoded, resampled straight to 16 kHz.
- ``gain-12``, ``gain-6``, ``gain+6``: input level change, clipped at full scale like a capture.
- ``sr44100``, ``sr48000``: captured at 44.1 / 48 kHz, then resampled as the live path does.
- ``room``: played through a small speaker into a microphone (band-limit, room, noise).
- ``rand<k>``: training augmentation: a random chain of gain (−12..+6 dB), time shift,
  noise, EQ tilt, capture-rate round trip and, half the time, the speaker→mic simulation.
- ``mic<k>``: the same random chain, always through a random speaker→mic simulation.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

from ..audio.resample import resample
from ..config import MODEL_SR

# What a live user meets: a quiet input, a clipping one, a 48-kHz capture (the live
# condition itself captures at 44.1 kHz) and a speaker→microphone path. Any ``gain±N``
# and ``srN`` is also accepted; −6 dB and 44.1 kHz scored within 0.1 point of their
# neighbours whenever they were measured.
EVAL_CONDITIONS = ("clean", "gain-12", "gain+6", "sr48000", "room")
# Not an audio transform: the track goes through the live path itself (``dataset.live_path_windows``).
LIVE_CONDITION = "live"
CAPTURE_SR = 48000
# The condition names ``apply`` takes besides ``clean`` and ``room``.
GAIN_CONDITION = re.compile(r"gain([+-]\d+(?:\.\d+)?)")
CAPTURE_CONDITION = re.compile(r"sr(\d+)")
CHAIN_CONDITION = re.compile(r"(rand|mic)\d+")


class UnknownCondition(ValueError):
    """A condition name that ``apply`` does not know."""


def condition_rng(content_hash: str, condition: str) -> np.random.Generator:
    seed = int(hashlib.sha1(f"{content_hash}:{condition}".encode()).hexdigest()[:16], 16)
    return np.random.default_rng(seed)


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def apply_gain(y: np.ndarray, db: float) -> np.ndarray:
    """Level change, clipped to ±1 as a sound card would."""
    return np.clip(y * db_to_gain(db), -1.0, 1.0).astype(np.float32)


def add_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator, pink: bool = False) -> np.ndarray:
    """White (or pink) Gaussian noise at ``snr_db`` below the signal's RMS."""
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) + 1e-9
    noise = rng.standard_normal(len(y))
    if pink:
        n = sp_fft.next_fast_len(len(y), real=True)  # a track's length can be a large prime: slow FFTs
        spec = sp_fft.rfft(noise, n=n)
        spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1.0))
        noise = sp_fft.irfft(spec, n=n)[:len(y)]
    noise *= rms * db_to_gain(-snr_db) / (np.std(noise) + 1e-12)
    return (y + noise).astype(np.float32)


def eq_tilt(y: np.ndarray, sr: int, db_per_octave: float) -> np.ndarray:
    """Spectral tilt around 1 kHz (bright/dull speakers and rooms), limited to ±12 dB."""
    n = sp_fft.next_fast_len(len(y), real=True)
    spec = sp_fft.rfft(y.astype(np.float64), n=n)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    gain_db = np.clip(db_per_octave * np.log2(np.maximum(f, 20.0) / 1000.0), -12.0, 12.0)
    return sp_fft.irfft(spec * 10.0 ** (gain_db / 20.0), n=n)[:len(y)].astype(np.float32)


def room_impulse(sr: int, rt60: float, direct_to_reverb_db: float, rng: np.random.Generator) -> np.ndarray:
    """A short synthetic room response: a direct path and exponentially decaying noise."""
    n = int(sr * min(0.5, rt60))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # −60 dB at rt60
    tail[: int(0.003 * sr)] = 0.0  # first reflections arrive a few ms late
    tail *= db_to_gain(-direct_to_reverb_db) / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    tail[0] = 1.0
    return tail


def speaker_mic(y: np.ndarray, sr: int, rng: np.random.Generator, *, highpass: float = 150.0,
                lowpass: float = 7000.0, rt60: float = 0.3, drr_db: float = 6.0,
                snr_db: float = 25.0, drive: float = 1.5) -> np.ndarray:
    """A speaker → room → microphone path: band-limit, mild speaker distortion, room, noise."""
    lowpass = min(lowpass, 0.45 * sr)
    sos = signal.butter(4, [highpass, lowpass], btype="bandpass", fs=sr, output="sos")
    x = signal.sosfilt(sos, y.astype(np.float64))
    peak = np.max(np.abs(x)) + 1e-9
    x = np.tanh(drive * x / peak) * peak / np.tanh(drive)  # soft saturation of a small speaker
    x = signal.fftconvolve(x, room_impulse(sr, rt60, drr_db, rng))[: len(y)]
    x = add_noise(x.astype(np.float32), snr_db, rng, pink=True)
    # The microphone's gain brings the level back to the original's; levels vary via apply_gain.
    x *= np.sqrt(np.mean(np.square(y, dtype=np.float64)) / (np.mean(np.square(x, dtype=np.float64)) + 1e-18))
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def _random_chain(y: np.ndarray, sr: int, rng: np.random.Generator,
                  p_speaker: float = 0.5) -> tuple[np.ndarray, int]:
    capture_sr = int(rng.choice([sr, 44100, 48000]))
    y = resample(y, sr, capture_sr)
    if rng.random() < p_speaker:
        y = speaker_mic(y, capture_sr, rng, highpass=rng.uniform(60, 300), lowpass=rng.uniform(4500, 12000),
                        rt60=rng.uniform(0.1, 0.6), drr_db=rng.uniform(0, 12), snr_db=rng.uniform(12, 35),
                        drive=rng.uniform(0.5, 2.5))
    if rng.random() < 0.7:
        y = eq_tilt(y, capture_sr, rng.uniform(-3.0, 3.0))
    if rng.random() < 0.7:
        y = add_noise(y, rng.uniform(20, 50), rng)
    y = apply_gain(y, rng.uniform(-12.0, 6.0))
    return y, capture_sr


def apply(y: np.ndarray, sr: int, condition: str, content_hash: str = "",
          hop_s: float = 3.0) -> tuple[np.ndarray, float]:
    """``(16-kHz audio, window offset in seconds)`` of a track under ``condition``."""
    rng = condition_rng(content_hash, condition)
    offset = 0.0
    if condition == "clean":
        pass
    elif m := GAIN_CONDITION.fullmatch(condition):
        y = apply_gain(y, float(m.group(1)))
    elif m := CAPTURE_CONDITION.fullmatch(condition):
        y, sr = resample(y, sr, int(m.group(1))), int(m.group(1))
    elif condition == "room":
        y, sr = resample(y, sr, CAPTURE_SR), CAPTURE_SR
        y = speaker_mic(y, sr, rng)
    elif m := CHAIN_CONDITION.fullmatch(condition):
        y, sr = _random_chain(y, sr, rng, 1.0 if m.group(1) == "mic" else 0.5)
        offset = float(rng.uniform(0.0, hop_s))  # time shift: windows start anywhere
    else:
        raise UnknownCondition(f"Unknown audio condition {condition!r}; known: "
                               f"{', '.join(EVAL_CONDITIONS)}, rand0, rand1, ..., mic0, mic1, ...")
    return resample(y, sr, MODEL_SR), offset
