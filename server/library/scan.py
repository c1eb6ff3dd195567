"""Find the audio files under folders: recursive, symlink loops cut, everything else listed with a reason."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# What the decoder reads: libsndfile's formats in-process, ffmpeg's containers through ffmpeg.
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf",
    ".w64", ".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".asf", ".ac3", ".dts", ".mka", ".mkv",
    ".webm", ".ape", ".wv", ".mpc", ".tta", ".amr", ".3gp", ".mov", ".mp2", ".mpga", ".ra", ".dsf", ".dff",
})


@dataclass
class Scan:
    """``files``: the audio files found (absolute, sorted, each once); ``skipped``: ``[(path, reason)]``."""

    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def is_audio_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in AUDIO_EXTENSIONS


def _check_file(path: str) -> str | None:
    """Why ``path`` cannot be analysed, or None."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if st.st_size == 0:
        return "empty (0 bytes)"
    if not os.access(path, os.R_OK):
        return "permission denied"
    if not is_audio_name(path):
        return "not an audio file"
    return None


def scan(folders: list[str]) -> Scan:
    """Walk ``folders`` (files are taken as they are), following symlinks but never into a folder twice."""
    out = Scan()
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if real in seen_files:
            return
        reason = _check_file(path)
        if reason:
            out.skipped.append((path, reason))
            return
        seen_files.add(real)
        out.files.append(os.path.abspath(path))

    for folder in folders:
        if os.path.isfile(folder):
            add(folder)
            continue
        if not os.path.isdir(folder):
            out.skipped.append((folder, "not found"))
            continue
        errors: list[OSError] = []
        for root, dirs, names in os.walk(folder, followlinks=True, onerror=errors.append):
            real = os.path.realpath(root)
            if real in seen_dirs:
                out.skipped.append((root, "symlink loop or folder already scanned"))
                dirs.clear()
                continue
            seen_dirs.add(real)
            dirs.sort()
            for name in sorted(names):
                add(os.path.join(root, name))
        out.skipped.extend((e.filename or folder, f"cannot read folder: {e.strerror or e}") for e in errors)
    out.files.sort()
    return out
