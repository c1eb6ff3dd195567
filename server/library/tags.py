"""Genre and tempo written into the files' tags (mutagen), safely, with an undo log.

Only the genre and BPM fields are touched. Each file is rewritten as a copy next to it, the
copy's audio stream is checked byte for byte against the original's (``audio_digest``), and
only then does the copy replace the file. Every change is logged, before it is made, as one JSON
line holding the fields' previous values, so ``undo`` restores them exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass

import mutagen
from mutagen.id3 import ID3

FIELDS = ("genre", "bpm")


class TagError(Exception):
    """A file's tags cannot be read or written; message for the user."""


@dataclass
class TagChange:
    """``old``/``new``: ``{field: [values] or None}``; ``skip``: why the file is left alone (or None)."""

    path: str
    old: dict
    new: dict
    skip: str | None = None

    def describe(self) -> str:
        def show(values):
            return "(none)" if not values else "; ".join(values)
        if self.skip:
            return f"{self.path}: skipped ({self.skip})"
        parts = [f"{f} {show(self.old[f])} → {show(self.new[f])}" for f in FIELDS if self.new[f] != self.old[f]]
        return f"{self.path}: " + (", ".join(parts) if parts else "unchanged")


def _open(path: str):
    try:
        audio = mutagen.File(path, easy=True)
    except (mutagen.MutagenError, OSError) as exc:
        raise TagError(f"cannot read tags: {exc}") from None
    if audio is None or not hasattr(audio, "add_tags") and audio.tags is None:
        raise TagError("tags are not supported for this format")
    if audio.tags is not None and not hasattr(audio.tags, "keys"):
        raise TagError("tags are not supported for this format")
    return audio


def _values(audio, field: str) -> list[str] | None:
    if audio.tags is None:
        return None
    try:
        values = audio.tags.get(field)
    except (KeyError, ValueError):
        return None
    return [str(v) for v in values] if values else None


def read_fields(path: str) -> dict:
    audio = _open(path)
    return {f: _values(audio, f) for f in FIELDS}


def plan(results: list[dict], overwrite: bool = False) -> list[TagChange]:
    """What writing would change, file by file: genre and BPM from each result."""
    changes = []
    for r in results:
        path = r["path"]
        new = {"genre": [r["genre"]] if r["genre"] else None,
               "bpm": [str(int(round(r["tempo"])))] if r.get("tempo") else None}
        try:
            old = read_fields(path)
        except TagError as exc:
            changes.append(TagChange(path, {f: None for f in FIELDS}, new, str(exc)))
            continue
        skip = None
        if r["genre"] is None:
            skip = f"not music ({r['content']})"
        elif old["genre"] and not overwrite:
            skip = f"already has a genre: {'; '.join(old['genre'])} (--overwrite-tags to replace)"
        # A field we have no value for (no beat found) keeps what it had.
        new = {f: new[f] if new[f] is not None else old[f] for f in FIELDS}
        changes.append(TagChange(path, old, new, skip))
    return changes


def audio_digest(path: str) -> str:
    """MD5 of the file's audio packets as stored (ffmpeg stream copy): tags and container aside."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:a", "-c", "copy", "-f", "md5", "-"]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TagError(f"cannot check the audio data: {exc}") from None
    if out.returncode != 0 or not out.stdout.startswith(b"MD5="):
        raise TagError("cannot check the audio data: " + out.stderr.decode("utf-8", "replace").strip()[-200:])
    return out.stdout.decode().strip()


def _id3_version(path: str) -> int | None:
    """2.3 or 2.4 for a file with an ID3 tag (kept as it was when we save), else None."""
    try:
        tags = mutagen.File(path).tags
    except (mutagen.MutagenError, OSError, AttributeError):
        return None
    return tags.version[1] if isinstance(tags, ID3) else None


def _save(audio, id3_version: int | None) -> None:
    if id3_version in (3, 4):
        audio.save(v2_version=id3_version)
    else:
        audio.save()


def _rewrite(path: str, values: dict, drop_empty_tags: bool = False, id3_version: int | None = None) -> None:
    """Set ``values`` (None: remove the field) on a copy, check its audio, then replace ``path``."""
    before = audio_digest(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.gm-tagging")
    shutil.copy2(path, tmp)
    try:
        audio = _open(tmp)
        version = id3_version or _id3_version(tmp)
        if audio.tags is None:
            audio.add_tags()
        for field, value in values.items():
            if value is None:
                if field in audio.tags:
                    del audio.tags[field]
            else:
                audio.tags[field] = value
        if drop_empty_tags and not list(audio.tags.keys()):
            audio.delete()
        else:
            _save(audio, version)
        if audio_digest(tmp) != before:
            raise TagError("the audio data would change; file left as it was")
        os.replace(tmp, path)
    except mutagen.MutagenError as exc:
        raise TagError(f"cannot write tags: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def apply(changes: list[TagChange], undo_log: str, on_written=None) -> list[tuple[str, str]]:
    """Write the changes that are not skipped; returns ``[(path, error)]`` for files left as they were.

    ``on_written(path)`` is called after each file is rewritten.
    """
    errors = []
    with open(undo_log, "a", encoding="utf-8") as log:
        for ch in changes:
            if ch.skip or ch.new == ch.old:
                continue
            try:
                audio = _open(ch.path)
                entry = {"path": ch.path, "old": ch.old, "had_tags": audio.tags is not None,
                         "id3_version": _id3_version(ch.path)}
                log.write(json.dumps(entry) + "\n")
                log.flush()
                os.fsync(log.fileno())  # the undo entry is on disk before the file changes
                _rewrite(ch.path, {f: ch.new[f] for f in FIELDS})
            except (TagError, OSError) as exc:
                errors.append((ch.path, str(exc)))
                continue
            if on_written:
                on_written(ch.path)
    return errors


def read_undo_log(undo_log: str) -> dict[str, dict]:
    """``{path: entry}``, each file's oldest entry: its tags from before any of our writes."""
    try:
        with open(undo_log, encoding="utf-8") as f:
            entries = [json.loads(line) for line in f if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TagError(f"cannot read the undo log {undo_log}: {exc}") from None
    firsts: dict[str, dict] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not isinstance(entry.get("old"), dict):
            raise TagError(f"{undo_log} is not an undo log of run.py library")
        firsts.setdefault(entry["path"], entry)
    return firsts


def undo(undo_log: str, on_written=None) -> tuple[int, list[tuple[str, str]]]:
    """Restore the fields logged in ``undo_log``; ``(restored, [(path, error)])``."""
    restored, errors = 0, []
    for path, entry in read_undo_log(undo_log).items():
        try:
            _rewrite(path, entry["old"], drop_empty_tags=not entry["had_tags"], id3_version=entry.get("id3_version"))
        except (TagError, OSError) as exc:
            errors.append((path, str(exc)))
            continue
        restored += 1
        if on_written:
            on_written(path)
    return restored, errors
