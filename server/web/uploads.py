"""Uploaded audio files: stored under a random name, accepted only if they decode.

The upload folder has a quota (``UPLOAD_QUOTA_MB``, settings ``upload_quota_mb``): an upload
that would take the folder beyond it is refused (``UploadQuotaError``, HTTP 507). At start,
uploads no source uses that are older than ``UPLOAD_RETENTION_DAYS`` (settings
``upload_retention_days``) are removed (``UploadStore.prune``). A disk that fills while an upload
is stored answers 507 too (``UploadDiskFullError``), and nothing of the upload stays.

An upload is checked by decoding its first block (it is audio) and its length read from the
container (counted block by block when the container does not say): an hours-long file costs
the memory of a few seconds of audio.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path

from werkzeug.utils import secure_filename

from server.source_specs import shorten_label

# Extensions the decoder handles (soundfile natively, the rest through ffmpeg).
AUDIO_EXTENSIONS = {
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff",
    ".wma", ".webm", ".mka", ".mp4", ".caf",
}


_ID_RE = re.compile(r"[0-9a-f]{16}")
MB = 1024 * 1024
UPLOAD_QUOTA_MB = 2048         # all files in the upload folder together
UPLOAD_RETENTION_DAYS = 30.0   # unused uploads older than this are removed at start

log = logging.getLogger(__name__)


class UploadError(Exception):
    """An upload was rejected; the message is shown to the user."""


class UploadQuotaError(UploadError):
    """The upload would take the upload folder beyond its quota (HTTP 507)."""


class UploadDiskFullError(UploadQuotaError):
    """The disk (or a file-size limit), not the quota, has no room for the upload (HTTP 507 too)."""


class UploadDirError(Exception):
    """The upload folder cannot be used (a file in its place, no permission); the message says why."""


# Errors of a write that found no room: the disk or quota full, a file-size limit.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextlib.contextmanager
def no_space_is_507():
    """Turns a write's "no space" ``OSError`` (``NO_SPACE_ERRNOS``) into ``UploadDiskFullError``."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_SPACE_ERRNOS:
            raise
        log.warning("upload refused: no space to store it (%s)", exc.strerror)
        raise UploadDiskFullError(
            f"Upload refused: no space left to store it ({exc.strerror}). Free some disk space "
            f"and upload the file again.") from None


def prepare_upload_dir(path: str | os.PathLike) -> Path:
    """The upload folder, created if missing; ``UploadDirError`` naming the path when it cannot be."""
    folder = Path(os.path.realpath(path))
    if folder.exists() and not folder.is_dir():
        raise UploadDirError(f"the upload folder {folder} is a file, not a folder: move it away or "
                             f"choose another with --upload-dir")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UploadDirError(f"cannot create the upload folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UploadDirError(f"the upload folder {folder} is not writable")
    return folder


def _mb(n: int) -> str:
    return f"{n / MB:.1f} MB" if n < 10 * 1024 * MB else f"{n / (1024 * MB):.1f} GB"


def display_name(name: str, ext: str = "") -> str:
    """The upload's name as shown (the source's label): printable, at most ``MAX_LABEL_CHARS``
    characters, the extension kept."""
    return shorten_label("".join(c if c.isprintable() else " " for c in name), ext)


class UploadStore:
    """Saves uploads into ``upload_dir`` and remembers them by id."""

    def __init__(self, upload_dir: str | os.PathLike, quota_mb: float = UPLOAD_QUOTA_MB):
        self.dir = prepare_upload_dir(upload_dir)
        self.quota_bytes = int(quota_mb * MB)
        self._items: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._reserved = 0  # bytes promised to uploads being received

    # --- quota ----------------------------------------------------------------------------------------
    def usage(self) -> int:
        """Bytes of the regular files in the upload folder (whatever put them there)."""
        total = 0
        with os.scandir(self.dir) as entries:
            for e in entries:
                try:
                    if e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
                except OSError:
                    pass
        return total

    def reserve(self, nbytes: int) -> None:
        """Hold ``nbytes`` of the quota for an upload about to be received; ``UploadQuotaError``
        when the folder (with the uploads under way) has no room for it. ``release`` after."""
        with self._lock:
            used = self.usage() + self._reserved
            if used + nbytes > self.quota_bytes:
                raise UploadQuotaError(
                    f"Upload refused: the upload folder is full ({_mb(used)} of its {_mb(self.quota_bytes)} quota "
                    f"used; this upload needs up to {_mb(nbytes)}). Uploads no source uses are removed at start "
                    f"once older than the retention period; or raise 'upload_quota_mb' in settings.json.")
            self._reserved += nbytes

    def release(self, nbytes: int) -> None:
        with self._lock:
            self._reserved = max(0, self._reserved - nbytes)

    def prune(self, keep_paths, older_than_days: float = UPLOAD_RETENTION_DAYS, now: float | None = None) -> list[str]:
        """Remove uploads (``<16 hex>.<audio ext>`` files) older than ``older_than_days`` whose
        path is not in ``keep_paths`` (the files sources use); returns the names removed."""
        keep = {os.path.realpath(p) for p in keep_paths if isinstance(p, str)}
        cutoff = (time.time() if now is None else now) - older_than_days * 86400.0
        removed, freed = [], 0
        for path in sorted(self.dir.iterdir()):
            if not (_ID_RE.fullmatch(path.stem) and path.suffix.lower() in AUDIO_EXTENSIONS):
                continue  # not an upload: never touched
            try:
                st = path.stat(follow_symlinks=False)
                if not path.is_file() or path.is_symlink() or st.st_mtime >= cutoff or str(path) in keep \
                        or os.path.realpath(path) in keep:
                    continue
                path.unlink()
            except OSError as exc:
                log.warning("could not remove old upload %s: %s", path.name, exc)
                continue
            removed.append(path.name)
            freed += st.st_size
        if removed:
            log.warning("removed %d upload(s) unused for over %g days (%s): %s", len(removed), older_than_days,
                     _mb(freed), ", ".join(removed[:20]) + (" …" if len(removed) > 20 else ""))
        return removed

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
            with no_space_is_507():
                storage.save(path)
            self._check_quota(path)
            duration = probe_duration(path, name)
        except BaseException:
            # Nothing of a rejected (or interrupted) upload stays on disk.
            path.unlink(missing_ok=True)
            raise
        item = {"upload_id": upload_id, "path": str(path), "name": name, "duration": duration}
        with self._lock:
            self._items[upload_id] = item
        return item

    def _check_quota(self, path: Path) -> None:
        """After saving: the folder (other uploads under way counted) still within the quota."""
        with self._lock:
            used = self.usage()
        if used > self.quota_bytes:
            size = path.stat().st_size
            raise UploadQuotaError(
                f"Upload refused: the upload folder is full ({_mb(used - size)} of its {_mb(self.quota_bytes)} quota "
                f"used; this file is {_mb(size)}). Uploads no source uses are removed at start once older than "
                f"the retention period; or raise 'upload_quota_mb' in settings.json.")

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
    """Seconds of audio in ``path``: its first block decoded (the check that it is audio), the length
    from the container, or counted block by block when the container does not say."""
    from server.audio.decode import DecodeError, open_blocks, probe
    from server.audio.stream_read import streamed_seconds

    try:
        duration = probe(str(path))["duration"]
        _, blocks = open_blocks(str(path))
        try:
            first = next(blocks, None)
        finally:
            blocks.close()
        if first is not None and duration is None:
            duration = streamed_seconds(str(path))
    except DecodeError as exc:
        # The stored file has a random name; speak of the one the user picked.
        message = str(exc).replace(str(path), display_name).replace(path.name, display_name)
        if display_name not in message:
            message = f"Could not decode {display_name}: {message}"
        raise UploadError(message) from None
    if first is None or not duration:
        raise UploadError(f"Could not decode {display_name}: it contains no audio.")
    return round(duration, 3)
