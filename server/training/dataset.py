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

from ..config import N_MELS, WINDOW_FRAMES

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".oga", ".opus", ".m4a", ".aiff", ".aif")


class DatasetError(Exception):
    """The data folder or split file cannot be used; the message is for the user."""


@dataclass(frozen=True)
class Track:
    path: str
    label: str
    track_id: str  # "<genre>/<file stem>", the unit that must never straddle a split
    collection: str = ""  # where the recordings come from (a studio, a label, a corpus): held out whole


def collection_arg(arg: str) -> tuple[str, str]:
    """``(collection name, folder)`` of a ``DATA_DIR`` argument: ``NAME=FOLDER`` names the collection
    (folders of one collection share a name), a plain folder is a collection of its own."""
    name, sep, folder = arg.partition("=")
    if not sep or os.path.isdir(arg) or not name or "/" in name:
        return os.path.basename(os.path.normpath(arg)), arg
    return name, folder


def scan_collection(data_dir: str, collection: str = "") -> tuple[list[Track], dict[str, str]]:
    """The audio files one level below ``data_dir``, labelled by their folder, sorted, and
    ``{path: reason}`` for what was left out (dangling links, unreadable files, empty folders)."""
    if not os.path.isdir(data_dir):
        raise DatasetError(f"Data folder not found: {data_dir}")
    tracks, skipped = [], {}
    try:
        genres = sorted(os.listdir(data_dir))
    except OSError as err:
        raise DatasetError(f"Cannot read data folder {data_dir}: {err.strerror}") from err
    for genre in genres:
        folder = os.path.join(data_dir, genre)
        if not os.path.isdir(folder) or genre.startswith("."):
            continue
        try:
            names = sorted(os.listdir(folder))
        except OSError as err:
            skipped[folder] = f"cannot read the folder ({err.strerror})"
            continue
        found = 0
        for name in names:
            if not name.lower().endswith(AUDIO_EXTENSIONS) or name.startswith("."):
                continue
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                skipped[path] = "broken link or not a file" if os.path.islink(path) else "not a file"
            elif not os.access(path, os.R_OK):
                skipped[path] = "not readable (permissions)"
            else:
                tracks.append(Track(path, genre, f"{genre}/{os.path.splitext(name)[0]}",
                                    collection or os.path.basename(os.path.normpath(data_dir))))
                found += 1
        if not found:
            skipped[folder] = "no audio files in this genre folder"
    return tracks, skipped


def list_tracks(data_dir: str, skipped: dict[str, str] | None = None, collection: str = "") -> list[Track]:
    """``scan_collection``'s tracks; what it left out goes into ``skipped``. Raises when there are none."""
    tracks, left_out = scan_collection(data_dir, collection)
    if skipped is not None:
        skipped.update(left_out)
    if not tracks:
        raise DatasetError(
            f"No audio files found in {data_dir}: expected one folder per genre "
            f"holding {', '.join(AUDIO_EXTENSIONS[:4])} files.")
    return tracks


def list_collections(data_dirs: list[str], skipped: dict[str, str] | None = None) -> list[Track]:
    """The tracks of several folders together (``collection_arg``: ``NAME=FOLDER`` or a folder)."""
    return [t for arg in data_dirs for name, folder in [collection_arg(arg)]
            for t in list_tracks(folder, skipped, name)]


def check_label_counts(tracks: list[Track], minimum: int = 2) -> None:
    """Training needs two genres and, to hold one out, ``minimum`` tracks of each."""
    counts: dict[str, int] = {}
    for t in tracks:
        counts[t.label] = counts.get(t.label, 0) + 1
    if len(counts) < 2:
        raise DatasetError(f"Training needs at least two genre folders with audio; found {sorted(counts) or 'none'}.")
    few = sorted(g for g, n in counts.items() if n < minimum)
    if few:
        raise DatasetError(f"Genre folder(s) {', '.join(few)} hold fewer than {minimum} readable tracks: "
                           f"cross-validation needs at least {minimum} per genre. Add tracks or remove the folder.")


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
    """Keep the tracks listed in any of ``split_files`` (all tracks when none given); a collection
    none of whose tracks the lists name is kept whole (the lists are another collection's)."""
    if not split_files:
        return tracks
    wanted = set().union(*(read_split(p) for p in split_files))
    listed = {t.collection for t in tracks if t.track_id in wanted}
    kept = [t for t in tracks if t.track_id in wanted or t.collection not in listed]
    if not listed:
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


# The live path itself: audio captured at 44.1 kHz arriving a second at a time through
# the ring buffer and frame stream, hop 1 s, with per-stream level normalisation.
LIVE_CAPTURE_SR = 44100
# Part of the cache key of the live condition's outputs: the live path is code, not an
# audio transform, so a change to it must miss the cache (2: first window after one second).
LIVE_PATH_VERSION = 2


def live_path_windows(y: np.ndarray, sr: int, source_id: str) -> tuple[np.ndarray, list]:
    """The windows (log-mel (B,187,96), stream keys) the live path makes of a track."""
    from ..audio.resample import resample
    from ..stream.pipeline import live_windows

    windows = list(live_windows(resample(y, sr, LIVE_CAPTURE_SR), LIVE_CAPTURE_SR, 1.0, source_id))
    if not windows:  # shorter than the first window: the live path classifies nothing
        return np.zeros((0, WINDOW_FRAMES, N_MELS), np.float32), []
    return np.stack([w.mel for w in windows]), [w.stream for w in windows]
