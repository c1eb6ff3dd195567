"""The data directory and the settings that survive restarts (sources, rules, smoothing)."""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Callable

from . import lock_files
from . import schemas as sc
from .config import MAX_SOURCES
from .monitor.alerts import validate_rules
from .monitor.segments import DEFAULT_HYSTERESIS, DEFAULT_MIN_DURATION_S
from .monitor.smoothing import DEFAULT_SMOOTHING
from .monitor.stage import validate_monitoring
from .sinks.webhook import WebhookError, validate_url
from .source_specs import saved_source

log = logging.getLogger(__name__)

ENV_DATA_DIR = "GENRE_MONITOR_DATA"
LOCK_FILE = "server.lock"            # held by the one server, or the cluster processes, using a data directory
MAX_FILE_BYTES = 16 << 20            # settings.json beyond this is not read (200 sources with 50 rules fit)
SAVE_RETRY_S = 5.0                   # a save that failed (full disk, read-only folder) is tried again this often


def webhook_url(value, where):
    """The webhook setting: an http(s) URL, checked when set (``server.sinks.webhook.validate_url``)."""
    url = sc.string(4096)(value, where)
    try:
        return validate_url(url)
    except WebhookError as exc:
        raise sc.SchemaError(f"{where}: {exc}") from None


def saved_rules(value, where):
    """One source's alert rules as saved: the API's shape, then the engine's rule checks."""
    rules = sc.RULES(value, where)
    try:
        return validate_rules(rules)
    except ValueError as exc:
        raise sc.SchemaError(f"{where}: {exc}") from None


# Every saved setting once: ``{key: (default, checker)}``, the checkers the API's (``server.schemas``).
FIELDS: dict = {
    "sources": ([], sc.list_of(saved_source, MAX_SOURCES)),  # source specs, restarted at start-up
    "rules": ({}, sc.rules_by_source),                     # source id -> alert rules
    "smoothing": (dict(DEFAULT_SMOOTHING), sc.smoothing_setting),
    "segments": ({"min_duration": DEFAULT_MIN_DURATION_S, "hysteresis": DEFAULT_HYSTERESIS},
                 sc.nested(sc.SEGMENTS)),
    "retention_days": (30.0, sc.number(0.001, 100000, " days")),
    "webhook": (None, webhook_url),                        # URL that receives alerts as JSON
    "token": (None, sc.string(500)),     # access token for the dashboard when exposed beyond loopback
    # Socket.IO sessions per client address (None: 32; 0: no limit).
    "max_sessions_per_client": (None, sc.number(0, 100000, integer=True)),
    "upload_quota_mb": (None, sc.number(1, 1e9, " MB")),  # all uploads together (None: 2048 MB)
    # Unused uploads older than this are removed at start (None: 30).
    "upload_retention_days": (None, sc.number(0.001, 100000, " days")),
}
DEFAULTS: dict = {key: default for key, (default, _check) in FIELDS.items()}
# Collections checked entry by entry: a bad entry, or one past the limit, costs only itself.
ENTRIES: dict = {"sources": (saved_source, MAX_SOURCES), "rules": (saved_rules, MAX_SOURCES)}


class DataDirError(Exception):
    """The data directory cannot be used by this server; the message is for the user."""


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else $GENRE_MONITOR_DATA, else the per-user XDG data folder."""
    raw = explicit or os.environ.get(ENV_DATA_DIR) or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "genre-monitor")
    path = Path(raw).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_settings(data: dict) -> tuple[dict, list[str]]:
    """(the usable fields of ``data``, one message per problem).

    Each field is checked on its own: a bad one falls back to its default, the rest are kept.
    A collection (``ENTRIES``) keeps its usable entries up to its limit. Unknown keys are left
    out and named."""
    good, problems = {}, []
    unknown = sorted(str(k)[:60] for k in data if k not in FIELDS)
    if unknown:
        problems.append(f"unknown setting(s) {', '.join(map(repr, unknown[:10]))}")
    for key, (_default, check) in FIELDS.items():
        if data.get(key) is None:
            continue
        try:
            good[key] = check(data[key], f"'{key}'")
        except sc.SchemaError as exc:
            if key in ENTRIES and isinstance(data[key], (list, dict)):
                good[key], lost = _keep_what_fits(key, data[key])
                problems += lost
            else:
                problems.append(str(exc))
    if "rules" in good:  # the schema shape of each source's rules, then the engine's checks
        good["rules"], lost = _keep_what_fits("rules", good["rules"])
        problems += lost
    return good, problems


def _keep_what_fits(key: str, value) -> tuple[list | dict, list[str]]:
    """The usable entries of a list or ``{id: entry}`` field, at most its limit; a message per loss."""
    check, limit = ENTRIES[key]
    pairs = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    kept, problems = [], []
    for name, entry in pairs:
        where = f"'{key}'.{name}" if isinstance(value, dict) else f"'{key}'[{name}]"
        if len(kept) == limit:
            problems.append(f"'{key}' has {len(pairs)} entries, more than {limit}: the first {limit} usable "
                            "ones are kept")
            break
        try:
            if isinstance(value, dict):
                sc.string(200)(name, f"'{key}' key")
            kept.append((name, check(entry, where)))
        except sc.SchemaError as exc:
            problems.append(str(exc))
    return (dict(kept) if isinstance(value, dict) else [e for _, e in kept]), problems


def check_values(loaded: dict) -> tuple[dict, list[str]]:
    """(usable fields, a message per problem): the API's schemas, then the engine's checks."""
    good, problems = check_settings(loaded)
    for key, check in (("smoothing", lambda v: validate_monitoring(smoothing=v)),
                       ("segments", lambda v: validate_monitoring(segments=v))):
        if key in good:
            try:
                check(good[key])
            except ValueError as exc:
                problems.append(f"'{key}': {exc}")
                del good[key]
    return good, problems


def read_settings_file(path: Path) -> dict:
    """The JSON object in ``path``: a regular file of at most ``MAX_FILE_BYTES`` (never a FIFO or a
    device, which would block or never end). ``ValueError`` or ``OSError`` says what is wrong."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise ValueError(f"{info.st_size} bytes, more than the {MAX_FILE_BYTES} a settings file may have")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise ValueError(f"more than the {MAX_FILE_BYTES} bytes a settings file may have")
    finally:
        os.close(fd)
    loaded = json.loads(b"".join(chunks))
    if not isinstance(loaded, dict):
        raise ValueError("not a JSON object")
    return loaded


def lock_data_dir(path: Path, shared: bool = False):
    """Claim ``path`` for this process. A standalone server needs it to itself (two would interleave
    their history and overwrite each other's settings); the processes of a cluster (``serve --redis``,
    ``worker``: they keep no history or settings of their own there) claim it ``shared``, alongside
    each other but never beside a standalone server. Returns the open lock file: keep it for the
    process's life (the lock goes with it). Raises ``DataDirError`` when the directory is not
    writable or is held in a way this claim cannot share."""
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
        return lock_files.claim(path / LOCK_FILE, shared)
    except lock_files.LockHeld as held:
        raise DataDirError(_data_dir_holder(path, held.holder, shared)) from None
    except OSError as exc:
        raise DataDirError(f"the data directory {path} is not writable ({exc.strerror or exc}): settings and "
                           "history could not be saved; make it writable or choose another with --data-dir"
                           ) from None


def _data_dir_holder(path: Path, holder: str | None, shared: bool) -> str:
    """Why a claim on ``path`` was refused, for the user: cluster processes hold it (``holder``
    None), or a standalone server (named by the pid it wrote)."""
    if holder is None:
        return (f"the data directory {path} is in use by the processes of a cluster (serve --redis, worker); "
                "a standalone server needs its data directory to itself: give it another --data-dir")
    if shared:
        return (f"the data directory {path} is in use by a standalone server ({holder}); the processes of a "
                "cluster share a data directory with each other only: give this one another --data-dir")
    return (f"the data directory {path} is in use by another server ({holder}); run one server "
            "per data directory, or give this one another --data-dir")


class Settings:
    """``settings.json`` in the data directory; every change is written atomically.

    A change that cannot be written (full disk, read-only folder) still holds in memory; the
    save is tried again every ``SAVE_RETRY_S`` until it works. ``save_error`` says why it is
    unsaved (None when saved), and ``on_save_error(message or None)`` hears each change of it.
    ``Settings(None)`` keeps the settings in memory only.
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self.values = json.loads(json.dumps(DEFAULTS))
        self.problems: list[str] = []  # what was wrong with the file at start-up (fields now at defaults)
        self.save_error: str | None = None
        self.on_save_error: Callable[[str | None], None] | None = None
        self._retry: threading.Timer | None = None
        if self.path is not None and (self.path.exists() or self.path.is_symlink()):
            self._load()

    def _load(self) -> None:
        try:
            loaded = read_settings_file(self.path)
        except (OSError, ValueError, RecursionError) as exc:
            self.problems = [f"unreadable: {exc}"]
            # Keep the unreadable file for the user; start from defaults.
            log.error("settings file %s is unreadable (%s); saved as %s, using defaults",
                      self.path, exc, self._set_aside())
            return
        good, self.problems = check_values(loaded)
        self.values.update(good)
        if self.problems:
            log.warning("settings file %s: %s; those settings are back to their defaults or left out (the file "
                        "as it was is saved as %s)", self.path, "; ".join(self.problems)[:4000], self._set_aside())
            self.change(lambda _values: {})  # the usable fields, so the next start finds a clean file

    def _set_aside(self) -> Path | None:
        """Move the file to the first free ``settings.json.bad[.N]``: an earlier bad file is never overwritten."""
        backup, n = self.path.with_name(self.path.name + ".bad"), 0
        while backup.exists() or backup.is_symlink():
            n += 1
            backup = self.path.with_name(f"{self.path.name}.bad.{n}")
        try:
            self.path.replace(backup)
        except OSError as exc:
            log.error("could not move %s aside: %s", self.path, exc)
            return None
        return backup

    def __getitem__(self, key: str):
        return self.values[key]

    def update(self, **changes) -> bool:
        """Apply ``changes`` and save; False when they hold in memory only (see ``save_error``)."""
        return self.change(lambda _values: changes)

    def change(self, make_changes: Callable[[dict], dict]) -> bool:
        """``make_changes(current values) -> changes``, applied and saved under one lock (no lost update)."""
        with self._lock:
            self.values.update(make_changes(self.values))
            before = self.save_error
            saved = self._save()
            after = self.save_error
        self._tell(before, after)
        return saved

    def _tell(self, before: str | None, after: str | None) -> None:
        if (before is None) == (after is None):
            return
        if after is not None:
            log.error("%s; the change holds until the server stops, and saving is retried every %g s",
                      after, SAVE_RETRY_S)
        else:
            log.info("settings saved to %s again", self.path)
        if self.on_save_error is not None:
            try:
                self.on_save_error(after)
            except Exception:
                log.exception("reporting the settings' save state")

    def _save(self) -> bool:
        """Write the values (the caller holds the lock); on failure schedule a retry."""
        if self.path is None:
            return True
        try:
            self._write()
        except OSError as exc:
            self.save_error = f"settings could not be saved to {self.path}: {exc.strerror or exc}"
            if self._retry is None:
                self._retry = threading.Timer(SAVE_RETRY_S, self._retry_save)
                self._retry.daemon = True
                self._retry.start()
            return False
        self.save_error = None
        return True

    def _write(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".settings-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.values, f, indent=2)
                f.flush()
                os.fsync(f.fileno())  # a full disk shows here, not after the file replaced the good one
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _retry_save(self) -> None:
        with self._lock:
            self._retry = None
            if self.save_error is None:
                return
            before = self.save_error
            self._save()
            after = self.save_error
        self._tell(before, after)
