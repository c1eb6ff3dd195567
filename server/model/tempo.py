"""Tempo (BPM) of music, from a track excerpt or live from a source's newest audio.

One path for both: audio at 22.05 kHz → a spectral-flux onset envelope (128-band
log-mel, 86 frames/s, each band's rise over two frames against the previous frame's
3-band maximum, so vibrato is not an onset) → the mean autocorrelation of 8-s windows
→ each lag's periodicity plus that of its double and half lag (a beat repeats at
every bar and subdivides into notes) → weighted by a log-normal preference centred on
120 BPM (one octave wide) → the best lag, refined between frames.

Octave errors are the common mistake (a track at 70 BPM felt at 140): ``Tempo.alternative``
names the half or double tempo when it scores nearly as well, so a display can say so.
The constants were chosen on the train list of the fault-filtered GTZAN split
(``scripts/experiments/tempo_eval.py`` reports the other lists). The mel projection is a small
matmul: run with one BLAS thread (``model.fast.limit_blas_threads``, as the server does).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

SR = 22050           # the estimator's sample rate
N_FFT = 2048         # 93 ms: resolves a bass line's onsets
HOP = 256            # 11.6 ms between envelope frames
N_MELS = 128
FPS = SR / HOP       # envelope frames per second
MIN_BPM, MAX_BPM = 30.0, 300.0
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0
ACF_WINDOW_S, ACF_HOP_S = 8.0, 1.0
HARMONICS = ((1.0, 1.0), (2.0, 0.5), (0.5, 0.25))  # (lag multiple, weight)
DETREND_S = 0.5      # the envelope's moving average over this is removed before the autocorrelation
MIN_SECONDS = 8.0    # less audio in all has too few beats to tell a tempo
MIN_EXCERPT_S = 2.5  # an excerpt shorter than this counts for nothing
# Below this (the autocorrelation at the beat lag) nothing repeats: no beat. Soft classical music
# goes down to 0.04, and talk and noise often repeat more than that (measured on the data set's
# speech and noise), so telling music from the rest is the content head's job, not this one's.
MIN_CLARITY = 0.03
SILENT_RMS = 1e-4    # -80 dBFS: no tempo in silence
# The half or double tempo scoring at least this share of the best is named as the alternative.
ALTERNATIVE_SHARE = 0.7
PUSH_BLOCK = 1 << 18  # samples framed at a time (12 s at 22.05 kHz)
LIVE_SECONDS = 15.0  # the live estimate's audio: the newest this many seconds


@dataclass(frozen=True)
class Tempo:
    """A tempo estimate. ``clarity`` (0–1): how strongly the audio repeats at the beat;
    ``alternative``: the half or double tempo when it is nearly as likely, else None."""

    bpm: float
    clarity: float
    alternative: float | None = None


@functools.cache
def _mel_basis() -> np.ndarray:
    import librosa  # slow to import; only the filters are needed

    return librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmax=SR / 2).astype(np.float32).T


@functools.cache
def _hann() -> np.ndarray:
    n = np.arange(N_FFT, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)


def _log_mel(y: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) compressed mel magnitudes of 22.05-kHz audio, un-centred frames."""
    if y.shape[0] < N_FFT:
        return np.zeros((0, N_MELS), np.float32)
    import scipy.fft  # float32 transforms, twice numpy's speed here

    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]
    spec = scipy.fft.rfft(frames * _hann(), axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    return np.log1p(100.0 * np.sqrt(power @ _mel_basis()))


def _flux(mel: np.ndarray) -> np.ndarray:
    """Onset strength of each frame from the second on: rises over two frames, against a 3-band maximum."""
    if mel.shape[0] < 3:
        return np.zeros(0, np.float32)
    peak = mel.copy()
    peak[:, 1:] = np.maximum(peak[:, 1:], mel[:, :-1])
    peak[:, :-1] = np.maximum(peak[:, :-1], mel[:, 1:])
    return np.maximum(0.0, mel[2:] - peak[:-2]).sum(axis=1)


class OnsetEnvelope:
    """The onset envelope of audio pushed in blocks (any block sizes give the same envelope).

    ``max_seconds`` keeps only the newest part (None: all of it).
    """

    def __init__(self, sr: int, max_seconds: float | None = None):
        import soxr

        self.sr = int(sr)
        self._resampler = None if self.sr == SR else soxr.ResampleStream(self.sr, SR, 1, dtype="float32")
        self._max = None if max_seconds is None else int(max_seconds * FPS)
        self._pending = np.zeros(0, np.float32)   # 22.05-kHz samples not yet framed
        self._last = np.zeros((0, N_MELS), np.float32)  # the two newest frames, for the next flux
        self._env: list[np.ndarray] = []
        self._n = 0

    def push(self, y: np.ndarray) -> None:
        y = np.asarray(y, dtype=np.float32).reshape(-1)
        for start in range(0, y.shape[0], PUSH_BLOCK):  # a long push costs a block's memory, not its own
            block = y[start:start + PUSH_BLOCK]
            self._push(block if self._resampler is None else self._resampler.resample_chunk(block))

    def _push(self, y: np.ndarray) -> None:
        """Take 22.05-kHz samples."""
        y = np.concatenate([self._pending, y])
        frames = 0 if y.shape[0] < N_FFT else 1 + (y.shape[0] - N_FFT) // HOP
        if frames == 0:
            self._pending = y
            return
        mel = np.concatenate([self._last, _log_mel(y[:(frames - 1) * HOP + N_FFT])])
        self._pending = y[frames * HOP:]
        self._last = mel[-2:]
        flux = _flux(mel)
        if flux.size:
            self._env.append(flux)
            self._n += flux.size
        if self._max is not None and self._n > 2 * self._max:  # trim now and then, not on every push
            self._env = [self.envelope]
            self._n = self._env[0].size

    @property
    def envelope(self) -> np.ndarray:
        env = np.concatenate(self._env) if self._env else np.zeros(0, np.float32)
        return env if self._max is None else env[-self._max:]

    @property
    def seconds(self) -> float:
        return min(self._n, self._max or self._n) / FPS


def _autocorrelation(envelopes: list[np.ndarray]) -> np.ndarray:
    """Mean normalised autocorrelation of the ACF_WINDOW_S windows of each envelope (lag 0 → 1)."""
    width = min(int(ACF_WINDOW_S * FPS), max(env.shape[0] for env in envelopes))
    taper = np.hanning(width)
    total = np.zeros(width)
    for env in envelopes:
        k = int(DETREND_S * FPS) | 1
        env = np.maximum(0.0, env - np.convolve(env, np.ones(k) / k, mode="same"))
        for start in range(0, env.shape[0] - width + 1, int(ACF_HOP_S * FPS)):
            x = env[start:start + width]
            x = (x - x.mean()) * taper
            spec = np.fft.rfft(x, 2 * width)
            a = np.fft.irfft(spec.real ** 2 + spec.imag ** 2)[:width]
            if a[0] > 0:
                total += a / a[0]
    return total / total[0] if total[0] > 0 else total


def _refined(score: np.ndarray, i: int) -> float:
    """The peak at ``i`` refined to a fractional index by a parabola through its neighbours."""
    if 0 < i < score.shape[0] - 1 and np.isfinite(score[i - 1]) and np.isfinite(score[i + 1]):
        curve = score[i - 1] - 2 * score[i] + score[i + 1]
        if curve < 0:
            return i + float(np.clip(0.5 * (score[i - 1] - score[i + 1]) / curve, -0.5, 0.5))
    return float(i)


def tempo_of_envelopes(envelopes: list[np.ndarray]) -> Tempo | None:
    """The tempo of onset envelopes (``OnsetEnvelope.envelope``) of one piece: one envelope, or a few
    excerpts of a track; None when they have no clear beat or hold less than MIN_SECONDS in all.
    The autocorrelation windows are as long as the longest excerpt, up to ACF_WINDOW_S."""
    envelopes = [np.asarray(e, dtype=np.float64) for e in envelopes]
    envelopes = [e for e in envelopes if e.shape[0] >= MIN_EXCERPT_S * FPS and np.any(e > 0)]
    if sum(e.shape[0] for e in envelopes) < MIN_SECONDS * FPS:
        return None
    a = _autocorrelation(envelopes)
    lags = np.arange(a.shape[0], dtype=np.float64)
    salience = sum(w * np.interp(lags * m, lags, a, right=0.0) for m, w in HARMONICS)
    bpm = 60.0 * FPS / np.maximum(lags, 1.0)
    prior = np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    score = np.where((lags > 0) & (bpm >= MIN_BPM) & (bpm <= MAX_BPM), salience * prior, -np.inf)
    i = int(np.argmax(score))
    if not np.isfinite(score[i]) or score[i] <= 0:
        return None
    lag = _refined(score, i)
    clarity = float(np.interp(lag, lags, a))
    if clarity < MIN_CLARITY:
        return None
    tempo = 60.0 * FPS / lag
    return Tempo(bpm=tempo, clarity=clarity, alternative=_alternative(score, lag, score[i]))


def _alternative(score: np.ndarray, lag: float, best: float) -> float | None:
    """The half or double tempo when its score is within ALTERNATIVE_SHARE of the best."""
    options = []
    for factor in (2.0, 0.5):  # lag × 2 is half the tempo
        centre = lag * factor
        lo, hi = int(math.floor(centre * 0.97)), int(math.ceil(centre * 1.03)) + 1
        if lo < 1 or hi > score.shape[0]:
            continue
        j = lo + int(np.argmax(score[lo:hi]))
        if np.isfinite(score[j]) and score[j] >= ALTERNATIVE_SHARE * best:
            options.append((score[j], 60.0 * FPS / _refined(score, j)))
    return max(options)[1] if options else None


def _envelope(y: np.ndarray, sr: int) -> np.ndarray | None:
    """The onset envelope of a mono excerpt; None when it is silent."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected mono audio, got shape {y.shape}")
    energy = 0.0
    for start in range(0, y.shape[0], PUSH_BLOCK):  # block by block: no whole-length temporaries
        block = y[start:start + PUSH_BLOCK]
        if not np.all(np.isfinite(block)):
            raise ValueError("audio contains NaN or Inf")
        energy += float(np.dot(block, block))
    if y.size == 0 or math.sqrt(energy / y.size) < SILENT_RMS:
        return None
    onsets = OnsetEnvelope(int(sr))
    onsets.push(y)
    return onsets.envelope


def analyse_tempo(y: np.ndarray, sr: int) -> Tempo | None:
    """The tempo of a mono excerpt, or None when it has no clear beat. Accuracy grows with length:
    30 s of music is best (README, Tempo)."""
    return analyse_excerpts([y], sr)


def analyse_excerpts(excerpts: list[np.ndarray], sr: int) -> Tempo | None:
    """The tempo of a track from a few mono excerpts of it, read apart: three 8-s excerpts are about
    as good as 30 s in one piece; 3-s excerpts (model windows) do too, less well (README, Tempo)."""
    envelopes = [e for e in (_envelope(y, sr) for y in excerpts) if e is not None]
    return tempo_of_envelopes(envelopes)


def estimate_tempo(y: np.ndarray, sr: int) -> float | None:
    """BPM of a mono float32 excerpt, None when there is no beat (``analyse_tempo`` says more)."""
    tempo = analyse_tempo(y, sr)
    return None if tempo is None else tempo.bpm


class LiveTempo:
    """One source's tempo from its newest LIVE_SECONDS of audio, fed window by window.

    ``update(end, audio, sr)`` takes a window's audio ending at absolute sample ``end``;
    windows overlap, so only the samples not seen yet are used. A gap (skipped audio) or a
    new sample rate starts afresh.
    """

    def __init__(self):
        self._onsets: OnsetEnvelope | None = None
        self._end = 0
        self._since = 0  # samples pushed since the last estimate
        self.tempo: Tempo | None = None

    def update(self, end: int, audio: np.ndarray, sr: int, every_s: float = 1.0) -> Tempo | None:
        """Take the window's audio; re-estimate once ``every_s`` of new audio has arrived."""
        onsets = self._onsets
        start = end - audio.shape[0]
        if onsets is None or onsets.sr != sr or start > self._end or end < self._end:
            onsets = self._onsets = OnsetEnvelope(sr, LIVE_SECONDS)
            self._end, self._since, self.tempo = start, 0, None
        new = audio[audio.shape[0] - (end - self._end):] if end > self._end else audio[:0]
        onsets.push(new)
        self._end = end
        self._since += new.shape[0]
        if self._since >= every_s * sr:
            self._since = 0
            self.tempo = tempo_of_envelopes([onsets.envelope])
        return self.tempo
