"""The library's results in SQLite (``DATA_DIR/library.sqlite``).

``results`` holds one analysis per (content key, mode, model); ``files`` maps a path to its
key together with the size and mtime seen, so an unchanged file is looked up without being
read, and a moved one is found again by its key. Each result is committed as it arrives:
a killed run loses only the tracks in flight.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time

from .fingerprint import content_key

FILE_NAME = "library.sqlite"
MODES = ("fast", "full")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT NOT NULL, mode TEXT NOT NULL, model TEXT NOT NULL, data TEXT NOT NULL, analysed REAL NOT NULL,
    PRIMARY KEY (key, mode, model));
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, key TEXT NOT NULL,
    seen REAL NOT NULL);
CREATE INDEX IF NOT EXISTS files_by_key ON files (key);
"""


class LibraryStore:
    """Thread-safe: one connection behind a lock (the CLI and the web API each open one)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def key_of(self, path: str) -> str:
        """The content key of ``path``: from the files table when size and mtime are unchanged,
        else hashed (and remembered)."""
        st = os.stat(path)
        with self._lock:
            row = self._db.execute("SELECT size, mtime_ns, key FROM files WHERE path = ?", (path,)).fetchone()
        if row and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return row[2]
        key = content_key(path)
        self.remember(path, key, st)
        return key

    def remember(self, path: str, key: str, st: os.stat_result | None = None) -> None:
        st = st or os.stat(path)
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO files (path, size, mtime_ns, key, seen) VALUES (?, ?, ?, ?, ?)",
                             (path, st.st_size, st.st_mtime_ns, key, time.time()))

    def result(self, key: str, model: str, full: bool = False) -> dict | None:
        """A stored analysis of ``key`` (or ``{"error": why}`` for a file that could not be decoded);
        a full one also answers a fast request."""
        modes = ("full",) if full else ("full", "fast")
        with self._lock:
            rows = self._db.execute(
                f"SELECT mode, data FROM results WHERE key = ? AND model = ? AND mode IN ({','.join('?' * len(modes))})",
                (key, model, *modes)).fetchall()
        best = sorted(rows, key=lambda r: MODES.index(r[0]), reverse=True)
        return json.loads(best[0][1]) if best else None

    def put(self, key: str, model: str, result: dict) -> None:
        data = {k: v for k, v in result.items() if k != "path"}
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO results (key, mode, model, data, analysed) VALUES (?, ?, ?, ?, ?)",
                             (key, result["mode"], model, json.dumps(data), time.time()))

    def alias(self, old_key: str, new_key: str) -> None:
        """``new_key`` gets ``old_key``'s results (a file whose tags we rewrote is the same audio)."""
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO results (key, mode, model, data, analysed) "
                             "SELECT ?, mode, model, data, analysed FROM results WHERE key = ?", (new_key, old_key))

    def known(self, model: str, under: list[str] | None = None) -> list[dict]:
        """Every remembered path that still exists with its best result (``under``: only inside these folders)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT f.path, r.mode, r.data FROM files f JOIN results r ON r.key = f.key AND r.model = ? "
                "ORDER BY f.path", (model,)).fetchall()
        best: dict[str, tuple[str, str]] = {}
        for path, mode, data in rows:
            if path not in best or MODES.index(mode) > MODES.index(best[path][0]):
                best[path] = (mode, data)
        prefixes = [os.path.join(os.path.abspath(u), "") for u in under or []]
        rows = [{"path": p, **json.loads(d)} for p, (_m, d) in best.items()
                if (not prefixes or any(p.startswith(x) for x in prefixes)) and os.path.exists(p)]
        return [r for r in rows if "error" not in r]

    def rekey(self, path: str, old_key: str) -> None:
        """``path`` was rewritten with the same audio (its tags): its new key keeps the old results."""
        new_key = content_key(path)
        if new_key != old_key:
            self.alias(old_key, new_key)
        self.remember(path, new_key)
