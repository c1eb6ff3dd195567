"""The data directory and the settings that survive restarts (sources, rules, smoothing)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path

from . import schemas as sc
from .monitor.segments import DEFAULT_HYSTERESIS, DEFAULT_MIN_DURATION_S
from .monitor.smoothing import DEFAULT_SMOOTHING
from .source_specs import saved_source

log = logging.getLogger(__name__)

ENV_DATA_DIR = "GENRE_MONITOR_DATA"


# Every saved setting once: ``{key: (default, checker)}``, the checkers the API's (``server.schemas``).
FIELDS: dict = {
    "sources": ([], sc.list_of(saved_source)),            # source specs, restarted at start-up
    "rules": ({}, sc.rules_by_source),                     # source id -> alert rules
    "smoothing": (dict(DEFAULT_SMOOTHING), sc.smoothing_setting),
    "segments": ({"min_duration": DEFAULT_MIN_DURATION_S, "hysteresis": DEFAULT_HYSTERESIS},
                 sc.nested(sc.SEGMENTS)),
    "retention_days": (30.0, sc.number(0.001, 100000, " days")),
    "webhook": (None, sc.string(4096)),                    # URL that receives alerts as JSON
    "token": (None, sc.string(500)),     # access token for the dashboard when exposed beyond loopback
    # Socket.IO sessions per client address (None: 32; 0: no limit).
    "max_sessions_per_client": (None, sc.number(0, 100000, integer=True)),
    "upload_quota_mb": (None, sc.number(1, 1e9, " MB")),  # all uploads together (None: 2048 MB)
    # Unused uploads older than this are removed at start (None: 30).
    "upload_retention_days": (None, sc.number(0.001, 100000, " days")),
}
DEFAULTS: dict = {key: default for key, (default, _check) in FIELDS.items()}


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else $GENRE_MONITOR_DATA, else the per-user XDG data folder."""
    raw = explicit or os.environ.get(ENV_DATA_DIR) or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "genre-monitor")
    path = Path(raw).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _engine_checks() -> dict:
    """The checks the engine makes before it uses a saved value (beyond the API's schemas)."""
    from .monitor.alerts import validate_rules
    from .monitor.stage import validate_monitoring

    return {"smoothing": lambda v: validate_monitoring(smoothing=v),
            "segments": lambda v: validate_monitoring(segments=v),
            "rules": lambda v: [validate_rules(r) for r in v.values()]}


def check_settings(data: dict) -> tuple[dict, list[str]]:
    """(the usable fields of ``data``, one message per field that is not); unknown keys are left out.

    Each field is checked on its own: a bad one falls back to its default, the rest are kept."""
    good, problems = {}, []
    for key, (_default, check) in FIELDS.items():
        if data.get(key) is None:
            continue
        try:
            good[key] = check(data[key], f"'{key}'")
        except sc.SchemaError as exc:
            problems.append(str(exc))
    return good, problems


def check_values(loaded: dict) -> tuple[dict, list[str]]:
    """(usable fields, a message per bad one): the API's schemas field by field, then the engine's checks."""
    good, problems = check_settings(loaded)
    for key, check in _engine_checks().items():
        if key in good:
            try:
                check(good[key])
            except ValueError as exc:
                problems.append(f"'{key}': {exc}")
                del good[key]
    return good, problems


class Settings:
    """``settings.json`` in the data directory; every change is written atomically.

    ``Settings(None)`` keeps the settings in memory only.
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self.values = json.loads(json.dumps(DEFAULTS))
        self.problems: list[str] = []  # what was wrong with the file at start-up (fields now at defaults)
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            loaded = json.loads(self.path.read_text())
            if not isinstance(loaded, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError, RecursionError) as exc:
            self.problems = [f"unreadable: {exc}"]
            # Keep the unreadable file for the user; start from defaults.
            log.error("settings file %s is unreadable (%s); saved as %s, using defaults",
                      self.path, exc, self._set_aside())
            return
        good, self.problems = check_values(loaded)
        self.values.update(good)
        if self.problems:
            log.warning("settings file %s: %s; those settings are back to their defaults (the file as it was "
                        "is saved as %s)", self.path, "; ".join(self.problems), self._set_aside())
            with self._lock:
                self._save()  # the usable fields, so the next start finds a clean file

    def _set_aside(self) -> Path | None:
        """Move the file to the first free ``settings.json.bad[.N]``: an earlier bad file is never overwritten."""
        backup, n = self.path.with_name(self.path.name + ".bad"), 0
        while backup.exists():
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

    def update(self, **changes) -> None:
        with self._lock:
            self.values.update(changes)
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".settings-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.values, f, indent=2)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("could not save settings to %s: %s", self.path, exc)
            Path(tmp).unlink(missing_ok=True)
