"""Folder-per-genre collections: listing tracks, split files, loading and windowing.

A collection is ``DATA_DIR/<genre>/<track>.{wav,flac,ogg,mp3}`` (the GTZAN layout).
Windows are cut exactly as the live path cuts them: 48128 samples at 16 kHz, each
window's log-mel computed on its own (``features.window_mel``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from ..config import MODEL_SR, WINDOW_SAMPLES
from ..features import window_mel

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".oga", ".opus", ".m4a", ".aiff", ".aif")


class DatasetError(Exception):
    """The data folder or split file cannot be used; the message is for the user."""


@dataclass(frozen=True)
class Track:
    path: str
    label: str
    track_id: str  # "<genre>/<file stem>", the unit that must never straddle a split


def list_tracks(data_dir: str) -> list[Track]:
    """All audio files one level below ``data_dir``, labelled by their folder, sorted."""
    if not os.path.isdir(data_dir):
        raise DatasetError(f"Data folder not found: {data_dir}")
    tracks = []
    for genre in sorted(os.listdir(data_dir)):
        folder = os.path.join(data_dir, genre)
        if not os.path.isdir(folder) or genre.startswith("."):
            continue
        for name in sorted(os.listdir(folder)):
            if name.lower().endswith(AUDIO_EXTENSIONS) and not name.startswith("."):
                stem = os.path.splitext(name)[0]
                tracks.append(Track(os.path.join(folder, name), genre, f"{genre}/{stem}"))
    if not tracks:
        raise DatasetError(
            f"No audio files found in {data_dir}: expected one folder per genre "
            f"holding {', '.join(AUDIO_EXTENSIONS[:4])} files.")
    return tracks


def read_split(path: str) -> set[str]:
    """Track ids listed in a split file (lines like ``blues/blues.00012.wav``; extension ignored)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f]
    except OSError as err:
        raise DatasetError(f"Cannot read split file {path}: {err.strerror}") from err
    ids = set()
    for ln in lines:
        if not ln or ln.startswith("#"):
            continue
        parts = ln.replace("\\", "/").split("/")
        if len(parts) < 2:
            raise DatasetError(f"Split file {path}: expected 'genre/file' lines, got {ln!r}")
        ids.add(f"{parts[-2]}/{os.path.splitext(parts[-1])[0]}")
    return ids


def filter_split(tracks: list[Track], split_files: list[str] | None) -> list[Track]:
    """Keep the tracks listed in any of ``split_files`` (all tracks when none given)."""
    if not split_files:
        return tracks
    wanted = set().union(*(read_split(p) for p in split_files))
    kept = [t for t in tracks if t.track_id in wanted]
    if not kept:
        raise DatasetError("None of the tracks in the data folder are listed in the split file(s).")
    return kept


def file_hash(path: str) -> str:
    """SHA-1 of the file's bytes: the cache key survives renames and moves."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_audio(path: str) -> tuple[np.ndarray, int]:
    """Decoded mono float32 samples at the file's own rate (``DecodeError`` on failure)."""
    from ..audio.decode import decode

    return decode(path)


def window_starts(n_samples: int, hop: int, offset: int = 0) -> list[int]:
    """Start samples of full windows every ``hop`` samples from ``offset``; at least one."""
    last = n_samples - WINDOW_SAMPLES
    if last < offset:
        return [0]  # shorter than a window: window_mel left-pads, like the live path at start-up
    return list(range(offset, last + 1, hop))


def window_mels(y16k: np.ndarray, hop_s: float = 3.0, offset_s: float = 0.0) -> np.ndarray:
    """(B, 187, 96) log-mel windows of 16-kHz audio, each computed on its own samples."""
    hop = max(1, int(round(hop_s * MODEL_SR)))
    starts = window_starts(len(y16k), hop, int(round(offset_s * MODEL_SR)))
    return np.stack([window_mel(y16k[s:s + WINDOW_SAMPLES]) for s in starts])


# The live path itself: audio captured at 44.1 kHz arriving a second at a time through
# the ring buffer and frame stream, hop 1 s, with per-stream level normalisation.
LIVE_CAPTURE_SR = 44100


def live_path_windows(y: np.ndarray, sr: int, source_id: str) -> tuple[np.ndarray, list]:
    """The windows (log-mel (B,187,96), stream keys) the live path makes of a track."""
    from ..audio.resample import resample
    from ..pipeline import live_windows

    windows = list(live_windows(resample(y, sr, LIVE_CAPTURE_SR), LIVE_CAPTURE_SR, 1.0, source_id))
    return np.stack([w.mel for w in windows]), [w.stream for w in windows]
