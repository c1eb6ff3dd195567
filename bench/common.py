"""Shared helpers: timing statistics, process CPU and memory, benchmark audio."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "media" / "demo"


class BenchError(Exception):
    """The benchmark cannot run a measurement; the message says why."""


def log_tail(path: str) -> str:
    """The end of a server's log, for an error message."""
    try:
        with open(path, errors="replace") as f:
            return f.read()[-1500:]
    except OSError:
        return ""


def stats_ms(seconds) -> dict:
    """Median and p95 (ms) of a list of durations in seconds."""
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    if a.size == 0:
        raise BenchError("no timings were taken")
    return {"median_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "n": int(a.size)}


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if a and b else None


def proc_status(pid: int | str = "self") -> dict:
    """``VmRSS`` / ``VmHWM`` (MB) of a process from /proc."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = round(int(value.split()[0]) / 1024.0, 1)
    except OSError:
        pass
    return out


def cpu_seconds() -> float:
    """CPU time (user + system) of this process, all threads."""
    return time.process_time()


def synth_music(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Chords, bass and drums: music-like audio when no demo track is available."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    y = np.zeros(n)
    for i, root in enumerate(rng.choice([110.0, 130.8, 146.8, 164.8, 196.0], size=int(seconds / 2) + 1)):
        a, b = int(i * 2 * sr), min(n, int((i + 1) * 2 * sr))
        for k in (1.0, 1.26, 1.5, 2.0):
            y[a:b] += np.sin(2 * np.pi * root * k * t[a:b]) * 0.15
    beat = int(0.5 * sr)
    env = np.exp(-np.arange(beat) / (0.03 * sr))
    for s in range(0, n - beat, beat):
        y[s:s + beat] += env * (0.5 * np.sin(2 * np.pi * 55 * t[:beat]) + 0.2 * rng.standard_normal(beat))
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


def music_clips(n: int, seconds: float, sr: int = 44100) -> list[np.ndarray]:
    """``n`` different clips of real music (the demo tracks) or, failing that, synthetic music."""
    from server.audio.decode import decode
    from server.audio.resample import resample

    clips = []
    for path in sorted(DEMO_DIR.glob("*.ogg")):
        try:
            y, sr_in = decode(str(path))
        except Exception:
            continue
        y = resample(y, sr_in, sr)
        step = int(seconds * sr)
        for start in range(0, len(y) - step + 1, step):
            clips.append(y[start:start + step].astype(np.float32))
        if len(clips) >= n:
            break
    seed = 0
    while len(clips) < n:
        clips.append(synth_music(sr, seconds, seed))
        seed += 1
    return clips[:n]


def write_files(directory, n: int, seconds: float, sr: int = 44100) -> list[str]:
    """``n`` WAV files of ``seconds`` of music in ``directory``."""
    import soundfile as sf

    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, y in enumerate(music_clips(n, seconds, sr)):
        path = os.path.join(directory, f"music-{i:02d}.wav")
        sf.write(path, y, sr)
        paths.append(path)
    return paths
