"""The data directory and the settings that survive restarts (sources, rules, smoothing)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

ENV_DATA_DIR = "GENRE_MONITOR_DATA"

DEFAULTS: dict = {
    "sources": [],                       # source specs, restarted at start-up
    "rules": {},                         # source id -> alert rules
    "smoothing": {"kind": "ema", "tau": 5.0},
    "segments": {"min_duration": 15.0, "hysteresis": 0.1},
    "retention_days": 30.0,
    "webhook": None,                     # URL that receives alerts as JSON
    "token": None,                       # access token for the dashboard when exposed beyond loopback
}


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else $GENRE_MONITOR_DATA, else the per-user XDG data folder."""
    raw = explicit or os.environ.get(ENV_DATA_DIR) or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "genre-monitor")
    path = Path(raw).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


class Settings:
    """``settings.json`` in the data directory; every change is written atomically.

    ``Settings(None)`` keeps the settings in memory only.
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self.values = json.loads(json.dumps(DEFAULTS))
        if self.path is not None and self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
                if not isinstance(loaded, dict):
                    raise ValueError("not a JSON object")
                self.values.update({k: v for k, v in loaded.items() if k in DEFAULTS})
            except (OSError, ValueError) as exc:
                # Keep the unreadable file for the user; start from defaults.
                backup = self.path.with_suffix(".json.bad")
                log.error("settings file %s is unreadable (%s); saved as %s, using defaults", self.path, exc, backup)
                self.path.replace(backup)

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
