"""Tempo: generated click and drum tracks at known tempi, streaming, live windows, real music."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.audio.decode import decode
from server.model.tempo import (LiveTempo, OnsetEnvelope, analyse_excerpts, analyse_tempo, estimate_tempo)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SR = 44100
TEMPI = (60, 72, 90, 100, 120, 128, 140, 160, 174, 180)


def _hit(kind: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.3 * SR)) / SR
    if kind == "click":
        return np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.01)
    if kind == "kick":  # a falling sine
        return np.sin(2 * np.pi * (50 + 100 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.12)
    if kind == "snare":
        return 0.6 * rng.standard_normal(t.size) * np.exp(-t / 0.06)
    return 0.15 * np.diff(rng.standard_normal(t.size), prepend=0.0) * np.exp(-t / 0.015)  # hi-hat


def track(bpm: float, seconds: float = 20.0, pattern: str = "click", seed: int = 0) -> np.ndarray:
    """A click track (accented downbeat) or a rock beat (kick, snare, eighth-note hi-hats)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR))
    half = 60.0 / bpm / 2
    for k in range(int(seconds / half) + 1):
        if pattern == "click":
            hits = [("click", 1.0 if k % 8 == 0 else 0.6)] if k % 2 == 0 else []
        else:
            hits = [("kick", 1.0)] * (k % 4 == 0) + [("snare", 1.0)] * (k % 4 == 2) + [("hat", 1.0)]
        for kind, gain in hits:
            x = _hit(kind, rng)
            i = int(round(k * half * SR))
            n = min(x.size, y.size - i)
            if n > 0:
                y[i:i + n] += gain * x[:n]
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def near(est: float | None, bpm: float, tol: float = 0.02) -> bool:
    return est is not None and abs(est - bpm) <= tol * bpm


@pytest.mark.parametrize("pattern", ["click", "drums"])
def test_finds_the_tempo_of_generated_tracks(pattern):
    """Every tempo within 2 %: as the estimate, or, at the edges of the range, as the octave
    alternative it names; between 72 and 140 BPM the estimate itself."""
    for bpm in TEMPI:
        t = analyse_tempo(track(bpm, pattern=pattern), SR)
        assert t is not None, bpm
        assert near(t.bpm, bpm) or near(t.alternative, bpm), (bpm, t)
        if 72 <= bpm <= 140:
            assert near(t.bpm, bpm), (bpm, t)
        if not near(t.bpm, bpm):  # an octave off: the estimate is the half or double
            assert near(t.bpm, bpm / 2) or near(t.bpm, bpm * 2), (bpm, t)


def test_estimate_tempo_is_the_bpm_at_any_sample_rate():
    y = track(128, seconds=15)
    est44 = estimate_tempo(y, SR)
    est16 = estimate_tempo(y[::11].copy(), SR // 11)  # 4009 Hz: only the clicks' envelope is left
    assert near(est44, 128) and near(est16, 128, 0.04)


def test_no_tempo_in_silence_or_too_little_audio():
    assert estimate_tempo(np.zeros(10 * SR, np.float32), SR) is None
    assert estimate_tempo(track(120, seconds=7), SR) is None  # under MIN_SECONDS
    assert estimate_tempo(np.zeros(0, np.float32), SR) is None


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="mono"):
        estimate_tempo(np.zeros((2, SR * 10), np.float32), SR)
    y = track(120, seconds=10)
    y[100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        estimate_tempo(y, SR)


def test_excerpts_read_apart_give_the_tempo_of_the_whole():
    y = track(100, seconds=40, pattern="drums")
    parts = [y[i * 13 * SR:][:8 * SR] for i in range(3)]
    assert near(analyse_excerpts(parts, SR).bpm, 100)
    windows = [y[i * 7 * SR:][:3 * SR] for i in range(5)]  # model windows, as a fast library pass reads them
    assert near(analyse_excerpts(windows, SR).bpm, 100)
    assert analyse_excerpts(windows[:2], SR) is None  # 6 s in all: too little


def test_the_envelope_does_not_depend_on_block_sizes():
    y = track(140, seconds=6)
    whole = OnsetEnvelope(SR)
    whole.push(y)
    blocks = OnsetEnvelope(SR)
    rng = np.random.default_rng(1)
    i = 0
    while i < y.size:
        n = int(rng.integers(1, 5000))
        blocks.push(y[i:i + n])
        i += n
    a, b = whole.envelope, blocks.envelope
    assert a.size > 400 and abs(a.size - b.size) <= 1
    n = min(a.size, b.size)
    # Resampled in a stream either way; only the resampler's rounding differs.
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.999


def test_live_tempo_follows_a_change_of_tempo_from_overlapping_windows():
    """Windows of 3 s every second, as the worker sees them; the estimate follows the newest audio."""
    y = np.concatenate([track(90, seconds=30), track(130, seconds=30, seed=1)])
    live, seen = LiveTempo(), {}
    for end in range(3 * SR, y.size + 1, SR):
        seen[end // SR] = live.update(end, y[end - 3 * SR:end], SR)
    assert seen[7] is None and seen[9] is not None  # not enough audio until MIN_SECONDS
    assert near(seen[29].bpm, 90) and near(seen[59].bpm, 130)


def test_live_tempo_starts_afresh_after_a_gap():
    y = track(120, seconds=40)
    live = LiveTempo()
    for end in range(3 * SR, 20 * SR, SR):
        live.update(end, y[end - 3 * SR:end], SR)
    assert near(live.tempo.bpm, 120)
    assert live.update(30 * SR, y[27 * SR:30 * SR], SR) is None  # 7 s skipped: the old audio is dropped


def test_real_music_in_the_repository_has_a_steady_tempo():
    """Sanity band, not tuned per file: the demo's beat-driven tracks give the same tempo from
    either half, between 60 and 200 BPM."""
    for name in ("02-machine-wars.ogg", "04-lincity.ogg", "05-spunky-race.ogg"):
        y, sr = decode(str(ROOT / "media" / "demo" / name))
        first, second = analyse_tempo(y[:y.size // 2], sr), analyse_tempo(y[y.size // 2:], sr)
        assert 60 <= first.bpm <= 200, name
        assert near(first.bpm, second.bpm, 0.04), (name, first, second)


GTZAN_SANITY = ("blues.00000", "country.00000", "disco.00000", "hiphop.00001", "metal.00000", "reggae.00000",
                "rock.00000")


@pytest.mark.skipif(not (DATA / "gtzan-mini").is_dir(), reason="the research data is not here")
def test_real_gtzan_clips_within_a_sanity_band():
    """Beat-driven GTZAN clips (one per genre): most within 4 % of the annotated tempo or its octave."""
    ref = dict(line.strip().split(",") for line in open(DATA / "gtzan-splits" / "gtzan_tempo.csv")
               if line.strip() and not line.startswith("#"))
    good = 0
    for clip in GTZAN_SANITY:
        y, sr = decode(str(DATA / "gtzan-mini" / clip.split(".")[0] / f"{clip}.flac"))
        bpm, t = float(ref[clip]), analyse_tempo(y, sr)
        good += any(near(t.bpm, bpm * f, 0.04) for f in (1, 2, 0.5))
    assert good >= len(GTZAN_SANITY) - 1


def test_windows_carry_each_sample_once_for_the_tempo():
    """The live path's windows overlap, but the audio they carry for the tempo joins up into the stream."""
    from server.stream.pipeline import live_windows

    y = np.random.default_rng(2).standard_normal(12 * SR).astype(np.float32)
    windows = list(live_windows(y, SR, hop_s=0.5))
    assert windows[0].end == windows[0].audio.size  # the first window: all of its audio
    assert all(b.end - a.end == b.audio.size for a, b in zip(windows, windows[1:]))
    joined = np.concatenate([w.audio for w in windows])
    assert np.array_equal(joined, y[:windows[-1].end])
