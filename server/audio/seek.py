"""Read a few excerpts of a file by seeking, never decoding the whole file.

soundfile seeks in WAV, FLAC, Ogg and MP3 (libsndfile); everything else (m4a, aac,
wma, video...) is read by one short ``ffmpeg -ss`` per excerpt, which seeks in the
container. Memory and time depend on the excerpts' length, not the file's.
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import soundfile as sf

from .decode import DecodeError, probe

_FFMPEG_TIMEOUT_S = 60  # one excerpt; a stuck ffmpeg is killed


def _mono(block: np.ndarray) -> np.ndarray:
    """Float32 mono; NaN/Inf (broken float files) become silence."""
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 2:
        block = block.mean(axis=1, dtype=np.float64).astype(np.float32)
    return np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)


def _soundfile_excerpts(f: sf.SoundFile, starts: list[float], seconds: float) -> list[np.ndarray]:
    out = []
    n = max(1, int(round(seconds * f.samplerate)))
    for start in starts:
        f.seek(min(max(0, int(start * f.samplerate)), max(0, f.frames - 1)))
        out.append(_mono(f.read(n, dtype="float32", always_2d=True)))
    return out


def _ffmpeg_excerpt(path: str, sr: int, start: float, seconds: float) -> np.ndarray:
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-ss", f"{max(0.0, start):.3f}",
           "-t", f"{seconds:.3f}", "-i", path, "-map", "0:a:0", "-vn", "-f", "f32le", "-ac", "1",
           "-ar", str(sr), "pipe:1"]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise DecodeError(f"{os.path.basename(path)}: timed out reading an excerpt") from None
    except FileNotFoundError:
        raise DecodeError(f"{os.path.basename(path)}: cannot decode this format without ffmpeg") from None
    usable = len(out.stdout) - len(out.stdout) % 4
    if out.returncode != 0 and usable == 0:
        last = (out.stderr.decode("utf-8", "replace").strip().splitlines() or ["ffmpeg failed"])[-1]
        raise DecodeError(f"{os.path.basename(path)} is not a decodable audio file ({last})")
    return _mono(np.frombuffer(out.stdout[:usable], dtype="<f4"))


def read_excerpts(path: str, starts: list[float], seconds: float, info: dict | None = None
                  ) -> tuple[list[np.ndarray], int]:
    """``(excerpts, samplerate)``: ``seconds`` of mono float32 audio from each start (in seconds).

    ``info`` is ``decode.probe(path)`` when the caller has it. An excerpt near the end may be
    shorter; raises ``DecodeError`` for a file that is not audio or yields no samples.
    """
    path = os.fspath(path)
    info = info or probe(path)
    excerpts: list[np.ndarray] | None = None
    if info["backend"] == "soundfile":
        try:
            with sf.SoundFile(path) as f:
                excerpts = _soundfile_excerpts(f, starts, seconds)
        except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError):
            excerpts = None  # a damaged stretch: ffmpeg reads around it
    if excerpts is None:
        excerpts = [_ffmpeg_excerpt(path, info["samplerate"], s, seconds) for s in starts]
    if not any(e.size for e in excerpts):
        raise DecodeError(f"{os.path.basename(path)} contains no audio samples")
    return excerpts, int(info["samplerate"])
