"""Uploaded audio files: stored under a random name, accepted only if they decode."""

from __future__ import annotations

import os
import re
import secrets
import threading
from pathlib import Path

from werkzeug.utils import secure_filename

from server.source_specs import shorten_label

# Extensions the decoder handles (soundfile natively, the rest through ffmpeg).
AUDIO_EXTENSIONS = {
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff",
    ".wma", ".webm", ".mka", ".mp4", ".caf",
}


_ID_RE = re.compile(r"[0-9a-f]{16}")


class UploadError(Exception):
    """An upload was rejected; the message is shown to the user."""


def display_name(name: str, ext: str = "") -> str:
    """The upload's name as shown (the source's label): printable, at most ``MAX_LABEL_CHARS``
    characters, the extension kept."""
    return shorten_label("".join(c if c.isprintable() else " " for c in name), ext)


class UploadStore:
    """Saves uploads into ``upload_dir`` and remembers them by id."""

    def __init__(self, upload_dir: str | os.PathLike):
        self.dir = Path(os.path.realpath(upload_dir))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._items: dict[str, dict] = {}
        self._lock = threading.Lock()

    def save(self, storage) -> dict:
        """Save a werkzeug ``FileStorage``; returns ``{upload_id, path, name, duration}``."""
        name = (storage.filename or "").strip()
        if not name:
            raise UploadError("No file selected.")
        ext = Path(secure_filename(name) or name).suffix.lower()
        name = display_name(name, ext)
        if ext not in AUDIO_EXTENSIONS:
            raise UploadError(
                f"{name}: unsupported file type {ext or '(none)'}; "
                f"use one of {', '.join(sorted(AUDIO_EXTENSIONS))}.")
        upload_id = secrets.token_hex(8)
        path = self.dir / f"{upload_id}{ext}"
        try:
            storage.save(path)
            duration = probe_duration(path, name)
        except BaseException:
            # Nothing of a rejected (or interrupted) upload stays on disk.
            path.unlink(missing_ok=True)
            raise
        item = {"upload_id": upload_id, "path": str(path), "name": name, "duration": duration}
        with self._lock:
            self._items[upload_id] = item
        return item

    def get(self, upload_id: str) -> dict:
        """The upload ``upload_id`` (this run's, or a file a previous run accepted), always inside the folder."""
        upload_id = str(upload_id)
        if not _ID_RE.fullmatch(upload_id):
            raise UploadError(f"Unknown upload id {upload_id[:40]!r}; upload the file again.")
        with self._lock:
            item = self._items.get(upload_id)
        if item is None:
            # Accepted before a restart: the stored name is the id plus the extension.
            found = [p for p in self.dir.glob(f"{upload_id}.*") if p.suffix.lower() in AUDIO_EXTENSIONS]
            if found:
                item = {"upload_id": upload_id, "path": str(found[0]), "name": found[0].name}
        if item is None or not self._contains(item["path"]):
            raise UploadError(f"Unknown upload id {upload_id!r}; upload the file again.")
        return item

    def _contains(self, path: str) -> bool:
        real = os.path.realpath(path)
        return os.path.commonpath([real, str(self.dir)]) == str(self.dir) and os.path.isfile(real)


def probe_duration(path: Path, display_name: str) -> float:
    """Decode the whole file (the real check that it is audio); returns seconds."""
    from server.audio.decode import DecodeError, decode

    try:
        samples, sr = decode(str(path))
    except DecodeError as exc:
        # The stored file has a random name; speak of the one the user picked.
        message = str(exc).replace(str(path), display_name).replace(path.name, display_name)
        if display_name not in message:
            message = f"Could not decode {display_name}: {message}"
        raise UploadError(message) from None
    if sr <= 0 or len(samples) == 0:
        raise UploadError(f"Could not decode {display_name}: it contains no audio.")
    return round(len(samples) / float(sr), 3)
