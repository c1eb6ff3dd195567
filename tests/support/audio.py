"""Music-like test signals and comparisons, made by our own code (no fixtures on disk)."""

from __future__ import annotations

import numpy as np

# A I-V-vi-IV progression in A major (Hz of the chord roots' triads).
_CHORDS = (
    (220.00, 277.18, 329.63),
    (164.81, 207.65, 246.94),
    (185.00, 220.00, 277.18),
    (146.83, 185.00, 220.00),
)


def make_music(sr: int = 22050, seconds: float = 4.0, channels: int = 1, seed: int = 0,
               bpm: float = 120.0) -> np.ndarray:
    """A few seconds of harmonic chords, bass, kick, snare and hi-hat, peak 0.8.

    Returns float32 ``(n,)`` for mono or ``(n, channels)``; extra channels get a
    slightly different mix so a down-mix is not a no-op.
    """
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    beat = 60.0 / bpm
    nyq = sr / 2
    pad = np.zeros(n)
    bass = np.zeros(n)
    for i, chord in enumerate(_CHORDS * int(np.ceil(seconds / (4 * beat) / len(_CHORDS) + 1))):
        a, b = int(i * 4 * beat * sr), int((i + 1) * 4 * beat * sr)
        if a >= n:
            break
        seg = t[a:min(b, n)] - t[a]
        env = np.minimum(1.0, seg / 0.02) * np.exp(-seg * 0.6)
        for f in chord:
            for h in range(1, 6):
                if f * h < nyq * 0.9:
                    pad[a:a + seg.size] += env * np.sin(2 * np.pi * f * h * seg) / h ** 1.5
        f0 = chord[0] / 2
        bass[a:a + seg.size] += env * np.sin(2 * np.pi * f0 * seg)
    drums = np.zeros(n)
    hits = int(seconds / (beat / 2)) + 1
    for k in range(hits):
        a = int(k * beat / 2 * sr)
        if a >= n:
            break
        m = min(n - a, int(0.3 * sr))
        s = np.arange(m) / sr
        if k % 4 == 0:  # kick: pitch-swept sine
            drums[a:a + m] += 0.9 * np.exp(-s * 18) * np.sin(2 * np.pi * (50 + 90 * np.exp(-s * 30)) * s)
        elif k % 4 == 2:  # snare: noise burst + tone
            drums[a:a + m] += np.exp(-s * 25) * (0.5 * rng.standard_normal(m) + 0.3 * np.sin(2 * np.pi * 190 * s))
        hm = min(m, int(0.05 * sr))  # hi-hat: short bright noise on every 8th
        hat = rng.standard_normal(hm) * np.exp(-np.arange(hm) / sr * 90)
        drums[a:a + hm] += 0.25 * np.diff(hat, prepend=0.0)
    mix = 0.35 * pad / max(1.0, np.abs(pad).max()) + 0.3 * bass + 0.45 * drums
    out = [mix]
    for c in range(1, channels):
        out.append(0.6 * pad / max(1.0, np.abs(pad).max()) + 0.2 * bass + 0.3 * np.roll(drums, 7 * c))
    y = np.stack(out, axis=1)
    y *= 0.8 / np.abs(y).max()
    y = y.astype(np.float32)
    return y[:, 0] if channels == 1 else y


def best_lag_correlation(x: np.ndarray, ref: np.ndarray, max_lag: int | None = None) -> tuple[float, int]:
    """Normalised correlation of ``x`` with ``ref`` at the lag that maximises it.

    Returns ``(corr, lag)`` where ``x[lag + i]`` lines up with ``ref[i]``. The
    correlation is taken over the overlap only, so a delayed or trimmed copy of
    ``ref`` scores close to 1 and unrelated audio close to 0.
    """
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    size = 1 << int(np.ceil(np.log2(x.size + ref.size)))
    xc = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.concatenate([np.arange(0, x.size), np.arange(-ref.size + 1, 0)])
    vals = np.concatenate([xc[:x.size], xc[size - ref.size + 1:]])
    if max_lag is not None:
        keep = np.abs(lags) <= max_lag
        lags, vals = lags[keep], vals[keep]
    lag = int(lags[np.argmax(vals)])
    a, b = max(0, lag), max(0, -lag)
    m = min(x.size - a, ref.size - b)
    xs, rs = x[a:a + m], ref[b:b + m]
    denom = np.sqrt(np.dot(xs, xs) * np.dot(rs, rs))
    return (float(np.dot(xs, rs) / denom) if denom > 0 else 0.0), lag


def log_spectrum(x: np.ndarray, sr: int, n_fft: int = 2048, fmax: float = 8000.0) -> np.ndarray:
    """Mean log-magnitude spectrum up to ``fmax`` (a rate-independent timbre summary)."""
    x = np.asarray(x, dtype=np.float64)
    hop = n_fft // 2
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    grid = np.linspace(50, fmax, 200)
    return np.log10(np.interp(grid, freqs, mag) + 1e-6)
