"""Uploaded audio files: stored under a random name, accepted only if they decode."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from werkzeug.utils import secure_filename

# Extensions the decoder handles (soundfile natively, the rest through ffmpeg).
AUDIO_EXTENSIONS = {
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff",
    ".wma", ".webm", ".mka", ".mp4", ".caf",
}


class UploadError(Exception):
    """An upload was rejected; the message is shown to the user."""


class UploadStore:
    """Saves uploads into ``upload_dir`` and remembers them by id."""

    def __init__(self, upload_dir: str | os.PathLike):
        self.dir = Path(upload_dir).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._items: dict[str, dict] = {}
        self._lock = threading.Lock()

    def save(self, storage) -> dict:
        """Save a werkzeug ``FileStorage``; returns ``{upload_id, path, name, duration}``."""
        name = (storage.filename or "").strip()
        if not name:
            raise UploadError("No file selected.")
        ext = Path(secure_filename(name) or name).suffix.lower()
        if ext not in AUDIO_EXTENSIONS:
            raise UploadError(
                f"{name}: unsupported file type {ext or '(none)'}; "
                f"use one of {', '.join(sorted(AUDIO_EXTENSIONS))}.")
        upload_id = secrets.token_hex(8)
        path = self.dir / f"{upload_id}{ext}"
        storage.save(path)
        try:
            duration = probe_duration(path, name)
        except UploadError:
            path.unlink(missing_ok=True)
            raise
        item = {"upload_id": upload_id, "path": str(path), "name": name, "duration": duration}
        with self._lock:
            self._items[upload_id] = item
        return item

    def get(self, upload_id: str) -> dict:
        with self._lock:
            item = self._items.get(str(upload_id))
        if item is None:
            raise UploadError(f"Unknown upload id {upload_id!r}; upload the file again.")
        return item


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
