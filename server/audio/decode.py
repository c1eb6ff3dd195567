"""Audio files → float32 mono samples at the file's native rate.

soundfile (libsndfile) reads wav, flac, ogg/vorbis/opus and mp3 in-process; an
``ffmpeg`` subprocess handles everything else (m4a, aac, wma, video files...).
``open_blocks`` streams a file block by block so hours of audio never sit in
memory (``stream_read`` resamples such a stream, ``window_cutter`` cuts it into
model windows); ``decode`` reads a whole file, for short clips only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from typing import Iterator

import numpy as np
import soundfile as sf

_FFMPEG_TIMEOUT_S = 30  # for ffprobe
# ffmpeg decoding is killed when it produces nothing for this long (a pathological file).
_FFMPEG_STALL_S = 30
# Rates outside this range are a damaged header, not audio we can use.
MIN_SAMPLERATE, MAX_SAMPLERATE = 1000, 768000
# Samples beyond this magnitude are corrupt float data, not loud music (+24 dBFS).
MAX_ABS_SAMPLE = 16.0
# At most this many samples (all channels) per read, whatever the header claims.
_MAX_READ_SAMPLES = 1 << 22


class DecodeError(Exception):
    """A file could not be turned into audio; ``str(err)`` is meant for the user."""


def _name(path: str) -> str:
    return os.path.basename(os.fspath(path)) or os.fspath(path)


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise DecodeError(f"{_name(path)}: file not found")
    if os.path.isdir(path):
        raise DecodeError(f"{_name(path)} is a folder, not an audio file")
    if not os.access(path, os.R_OK):
        raise DecodeError(f"{_name(path)}: permission denied")
    if os.path.getsize(path) == 0:
        raise DecodeError(f"{_name(path)} is empty (0 bytes)")


def _sanitize(block: np.ndarray) -> np.ndarray:
    """Mono float32; NaN/Inf (from broken float files) become silence, absurd values are clipped."""
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 2:
        # float64 sum: huge-but-finite channels must not overflow into Inf while averaging
        block = block.mean(axis=1, dtype=np.float64) if block.shape[1] > 1 else block[:, 0]
    block = np.asarray(block, dtype=np.float32)
    if not np.isfinite(block).all():
        block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
    if block.size and np.abs(block).max() > MAX_ABS_SAMPLE:
        block = np.clip(block, -MAX_ABS_SAMPLE, MAX_ABS_SAMPLE)
    return np.ascontiguousarray(block, dtype=np.float32)


def _check_rate(path: str, sr) -> int:
    if not isinstance(sr, (int, np.integer)) or not MIN_SAMPLERATE <= sr <= MAX_SAMPLERATE:
        raise DecodeError(f"{_name(path)}: unsupported sample rate {sr} Hz (damaged header?)")
    return int(sr)


def _ffmpeg(tool: str, path: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        raise DecodeError(f"{_name(path)}: cannot decode this format without {tool} "
                          f"(install ffmpeg)")
    return exe


def _ffprobe(path: str) -> dict:
    """Rate, channels and duration of the first audio stream, via ffprobe."""
    cmd = [_ffmpeg("ffprobe", path), "-v", "error", "-select_streams", "a:0",
           "-show_entries", "stream=sample_rate,channels,duration:format=duration",
           "-of", "json", "--", path]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise DecodeError(f"{_name(path)}: timed out reading the file's header") from None
    try:
        info = json.loads(out.stdout or b"{}")
    except json.JSONDecodeError:
        info = {}
    streams = info.get("streams") or []
    if out.returncode != 0 or not streams or not streams[0].get("sample_rate"):
        raise DecodeError(f"{_name(path)} is not a decodable audio file")
    st = streams[0]
    dur = st.get("duration") or (info.get("format") or {}).get("duration")
    try:
        sr, channels = int(st["sample_rate"]), int(st.get("channels") or 1)
        dur = float(dur) if dur not in (None, "N/A") else None
    except (TypeError, ValueError):
        raise DecodeError(f"{_name(path)} is not a decodable audio file") from None
    if sr <= 0:  # ffprobe guessed a stream out of noise
        raise DecodeError(f"{_name(path)} is not a decodable audio file")
    return {"samplerate": _check_rate(path, sr), "channels": channels,
            "duration": dur if dur is None or np.isfinite(dur) else None, "backend": "ffmpeg"}


def probe(path: str) -> dict:
    """``{samplerate, channels, duration, backend}`` without decoding the audio.

    ``duration`` is in seconds, or None when the container does not say.
    """
    path = os.fspath(path)
    _check_file(path)
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return _ffprobe(path)
    _check_rate(path, info.samplerate)
    dur = info.frames / info.samplerate if info.frames > 0 else None
    return {"samplerate": int(info.samplerate), "channels": int(info.channels),
            "duration": dur, "backend": "soundfile"}


def probe_duration(path: str) -> float | None:
    """Length in seconds, or None when it cannot be known without decoding."""
    return probe(path)["duration"]


def _soundfile_blocks(f: sf.SoundFile, path: str, block_frames: int) -> Iterator[np.ndarray]:
    got, failed = 0, None
    block_frames = max(1, min(block_frames, _MAX_READ_SAMPLES // max(1, f.channels)))
    try:
        with f:
            while True:
                try:
                    block = f.read(block_frames, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError) as e:
                    if got == 0:
                        failed = e
                        break
                    return  # a damaged tail: keep what decoded
                if block.shape[0] == 0:
                    break
                got += block.shape[0]
                yield _sanitize(block)
    finally:
        f.close()
    if failed is not None:
        # libsndfile gives up on a whole read that crosses damage (a cut FLAC);
        # ffmpeg decodes up to the damage.
        try:
            info = _ffprobe(path)
        except DecodeError:
            raise DecodeError(f"{_name(path)} is not a decodable audio file ({failed})") from None
        yield from _ffmpeg_blocks(path, info, block_frames)
        return
    if got == 0:
        raise DecodeError(f"{_name(path)} contains no audio samples")


def _ffmpeg_blocks(path: str, info: dict, block_frames: int) -> Iterator[np.ndarray]:
    # -ar keeps the probed native rate explicitly: ffmpeg would otherwise follow
    # mid-stream rate changes and our samplerate would silently lie.
    cmd = [_ffmpeg("ffmpeg", path), "-nostdin", "-hide_banner", "-v", "error",
           "-i", path, "-map", "0:a:0", "-vn", "-f", "f32le", "-ac", "1",
           "-ar", str(info["samplerate"]), "pipe:1"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    got = 0
    progress = [time.monotonic()]
    done = threading.Event()
    threading.Thread(target=_kill_when_stalled, args=(proc, progress, done), daemon=True,
                     name="ffmpeg-decode-watchdog").start()
    stderr_tail = bytearray()
    # ffmpeg's stderr is read on a thread: a chatty error stream must not fill the pipe and stall us.
    err_reader = threading.Thread(target=_read_tail, args=(proc.stderr, stderr_tail), daemon=True)
    err_reader.start()
    try:
        nbytes = block_frames * 4
        while True:
            buf = proc.stdout.read(nbytes)
            if not buf:
                break
            usable = len(buf) - len(buf) % 4
            if usable == 0:
                continue
            got += usable // 4
            progress[0] = time.monotonic()
            yield _sanitize(np.frombuffer(buf[:usable], dtype="<f4"))
        rc = proc.wait()
        err_reader.join(timeout=5)
        err = stderr_tail.decode("utf-8", "replace").strip()
        if got == 0:
            if progress[0] < 0:
                raise DecodeError(f"{_name(path)}: decoding stalled for {_FFMPEG_STALL_S} s; gave up")
            last = err.splitlines()[-1] if err else f"ffmpeg exited with {rc}"
            if rc != 0:
                raise DecodeError(f"{_name(path)} is not a decodable audio file ({last})")
            raise DecodeError(f"{_name(path)} contains no audio samples")
    finally:
        done.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        err_reader.join(timeout=5)
        proc.stderr.close()


def _kill_when_stalled(proc: subprocess.Popen, progress: list, done: threading.Event) -> None:
    while not done.wait(1.0):
        if proc.poll() is not None:
            return
        if time.monotonic() - progress[0] > _FFMPEG_STALL_S:
            progress[0] = -1.0  # tells the reader why the output ended
            proc.kill()
            return


def _read_tail(stream, tail: bytearray, keep: int = 4096) -> None:
    try:
        for chunk in iter(lambda: stream.read(4096), b""):
            tail += chunk
            del tail[:-keep]
    except (OSError, ValueError):  # closed under us at shutdown
        pass


def open_blocks(path: str, block_frames: int = 65536) -> tuple[int, Iterator[np.ndarray]]:
    """Open ``path`` for streaming: ``(samplerate, iterator of float32 mono blocks)``.

    Header problems (missing, empty, not audio) raise ``DecodeError`` here; a
    file whose audio turns out to be empty or undecodable raises it from the
    iterator. A file damaged part-way yields what decoded before the damage.
    Close the iterator (or exhaust it) to release the file / ffmpeg process.
    """
    path = os.fspath(path)
    if block_frames <= 0:
        raise ValueError("block_frames must be positive")
    _check_file(path)
    try:
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        info = _ffprobe(path)
        return info["samplerate"], _ffmpeg_blocks(path, info, block_frames)
    try:
        _check_rate(path, f.samplerate)
    except DecodeError:
        f.close()
        raise
    return int(f.samplerate), _soundfile_blocks(f, path, block_frames)


def decode(path: str) -> tuple[np.ndarray, int]:
    """Read a whole file: ``(float32 1-D mono samples, samplerate)``.

    Multi-channel audio is averaged to mono; NaN/Inf samples become 0. Raises
    ``DecodeError`` with a user-readable message for anything that is not audio.
    """
    sr, blocks = open_blocks(path, block_frames=1 << 16)
    parts = list(blocks)
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), sr
