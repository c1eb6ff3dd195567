"""The history writer: an engine sink that commits every window, segment, alert and source in batches.

Its ``on_*`` methods only drop the event into a bounded queue (never blocking the worker); one
writer thread owns the write connection, turns events into rows (``history_rows``) and commits
them in batches at least every ``commit_interval`` seconds. On SQLite, WAL mode with
``synchronous=NORMAL`` means a committed batch survives ``kill -9`` of the process, so at most the
last ``commit_interval`` (+ the commit itself) of windows can be lost; on PostgreSQL every COMMIT
is durable at once, and labelset ids come from the database, so concurrent writers agree on them.

When the disk is full, the file read-only or the server gone, the failed batch is kept and retried
(up to ``max_pending`` rows, then the oldest are dropped), the failure is logged at most once a
minute and counted in ``errors``; capture carries on. Rows older than ``retention_days`` are pruned
every hour. Their age counts from the newest window found at start-up, advanced by the process's
own monotonic clock (or from the wall clock, when that is earlier): a wall clock that is set ahead
at start (a VM restored, an NTP fix) or jumps during a run then deletes nothing it should keep;
the price is that time the server was down does not count towards the retention.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from . import history_sql as sql
from ..monitor.classified import ClassifiedWindow
from .history_rows import alert_row, segment_row, source_rows, window_row
from .history_sql import SourceRow, StoreError, WindowRow, dialect_for, first_line

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
LOG_EVERY_S = 60.0
WAL_KEEP_BYTES = 4 << 20  # SQLite: the log shrinks back to this after a checkpoint (one auto-checkpoint's worth)
CLOCK_NOTE_S = 3600.0  # a wall clock this far past where pruning counts from is logged


@dataclass
class _Event:
    """An engine event waiting to become rows; ``what`` names it in error messages."""
    what: str
    to_rows: Callable[[dict], object]
    payload: dict


@dataclass
class _Request:
    """Work a caller waits for, run on the writer thread once what is pending is committed."""
    run: Callable[[], object]
    closes: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    result: object = None
    error: BaseException | None = None


class HistoryWriter:
    """History sink on SQLite or PostgreSQL; see the module docstring. ``target``: as for ``dialect_for``."""

    def __init__(self, target, retention_days: float = 30.0, commit_interval: float = 0.5,
                 queue_size: int = 10000, max_pending: int = 100000, clock: Callable[[], float] = time.time):
        """``clock``: the wall clock rows are pruned by (a test may set it wrong)."""
        self.db = dialect_for(target)
        self.path = self.db.path  # the file, or the URL without its password
        self.backend = self.db.name
        self.retention_days = float(retention_days)
        self.commit_interval = float(commit_interval)
        self.max_pending = int(max_pending)
        self.dropped = 0  # events lost: queue full, or pending overflow while the disk was failing
        self.errors = 0  # failed commits and unusable events
        self.written = 0  # rows committed
        self.last_error: str | None = None
        self._count_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._pending: list = []  # rows waiting for the next commit (writer thread only)
        self._closed = False
        self._labelsets: dict[str, int] = {}  # committed labelsets only: ids come from the database
        self._last_log = -math.inf
        self._clock = clock
        self._conn, failure = self.db.open_writer()
        self.reset = self.db.reset  # {"at", "damaged", "reason"} when a damaged file was moved aside
        if failure is not None:
            self._write_failed(failure, 0)
        if self.db.name == "sqlite":
            try:  # a log grown while a reader held it open goes back to its usual size after
                self._conn.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
            except self.db.Error as exc:
                log.warning("history database %s: cannot limit its log size: %s", self.path, exc)
        self._age_from = self._prune_anchor()
        self._clock_noted = False
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    # --- sink methods (engine worker thread: fast, never raise) --------------------------------------------
    def _put(self, event: _Event) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._count_lock:
                self.dropped += 1

    def on_prediction(self, window: ClassifiedWindow) -> None:
        self._put(_Event("window", window_row, window))

    def on_segment(self, payload: dict) -> None:
        self._put(_Event("segment", segment_row, payload))

    def on_alert(self, payload: dict) -> None:
        self._put(_Event("alert", alert_row, payload))

    def on_sources(self, payload: dict) -> None:
        self._put(_Event("sources", source_rows, payload))

    # --- control -----------------------------------------------------------------------------------------
    def _call(self, request: _Request, timeout: float = 30.0):
        """Run ``request`` on the writer thread and wait for its result."""
        if self._closed or not self._thread.is_alive():
            raise StoreError("the history store is closed")
        self._queue.put(request, timeout=timeout)
        if not request.done.wait(timeout):
            raise StoreError(f"history writer did not answer within {timeout:g} s")
        if request.error is not None:
            raise request.error
        return request.result

    def flush(self, timeout: float = 30.0) -> bool:
        """Commit everything queued so far; True when it is all in the database."""
        return bool(self._call(_Request(lambda: not self._pending), timeout))

    def prune(self, now: float | None = None, timeout: float = 60.0) -> int:
        """Delete rows older than the retention period; return how many."""
        return int(self._call(_Request(lambda: self._prune(now)), timeout) or 0)

    def close(self, timeout: float = 30.0) -> None:
        if self._closed:
            return
        try:
            self._call(_Request(lambda: None, closes=True), timeout)
        except (StoreError, queue.Full):
            log.warning("history writer did not stop cleanly")
        self._closed = True
        self._thread.join(timeout)
        self.db.close()

    def stats(self) -> dict:
        return {"path": self.path, "backend": self.backend, "queued": self._queue.qsize(),
                "written": self.written, "dropped": self.dropped, "errors": self.errors,
                "last_error": self.last_error, "reset": self.reset}

    def status(self) -> dict:
        """What the dashboard shows: history on, whether it was reset at start-up, the last write error."""
        return {"enabled": True, "reset": self.reset, "last_error": self.last_error}

    # --- writer thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        first_pending = None
        next_prune = time.monotonic() + 5.0  # not at once: let the server start
        while True:
            wait = self.commit_interval if first_pending is None else max(
                0.0, first_pending + self.commit_interval - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if isinstance(item, _Event):
                self._add_rows(item)
                if first_pending is None and self._pending:
                    first_pending = time.monotonic()
            due = first_pending is not None and time.monotonic() - first_pending >= self.commit_interval
            if self._pending and (due or isinstance(item, _Request)):
                if self._commit(self._pending):
                    self._pending.clear()
                    first_pending = None
                else:  # retry after another interval
                    first_pending = time.monotonic()
            if isinstance(item, _Request):
                try:
                    item.result = item.run()
                except Exception as exc:
                    item.error = exc
                item.done.set()
                if item.closes:
                    self._conn.close()
                    return
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_S
                try:
                    self._prune(None)
                except self.db.Error as exc:
                    self._write_failed(exc, 0)

    def _add_rows(self, event: _Event) -> None:
        try:
            rows = event.to_rows(event.payload)
        except Exception as exc:  # a malformed event loses itself only
            self._count_error(f"unusable {event.what} payload: {exc!r}")
            return
        self._pending.extend(rows if isinstance(rows, list) else [rows])
        if len(self._pending) > self.max_pending:
            lost = len(self._pending) - self.max_pending
            del self._pending[:lost]
            with self._count_lock:
                self.dropped += lost

    def _writer(self):
        """The write connection; a lost PostgreSQL connection is replaced (failing: retry later)."""
        if not self.db.alive(self._conn):
            self._conn.close()
            self._conn = self.db.connect()
        return self._conn

    def _exec(self, conn, statement: str, params=()):
        return conn.execute(self.db.sql(statement), params)

    def _write(self, conn, statement: str, params, one_by_one: bool, what: str) -> bool:
        """Write one row; with ``one_by_one``, a row the database rejects is dropped alone."""
        if not one_by_one:
            self._exec(conn, statement, params)
            return True
        conn.execute("SAVEPOINT one_row")
        try:
            self._exec(conn, statement, params)
        except self.db.Error as exc:
            if isinstance(exc, self.db.Retryable):
                raise
            conn.execute("ROLLBACK TO SAVEPOINT one_row")
            self._count_error(f"history {what} rejected: {first_line(exc)}")
            return False
        conn.execute("RELEASE SAVEPOINT one_row")
        return True

    def _commit(self, pending: list, one_by_one: bool = False) -> bool:
        # Several processes may write one PostgreSQL database: rows that others may also lock
        # (labelsets, sources) are written in sorted order so that two batches cannot deadlock.
        new_labelsets: dict[str, int] = {}
        rejected = 0
        conn = None
        try:
            conn = self._writer()
            conn.execute(self.db.begin)
            windows = {row.labels for row in pending if isinstance(row, WindowRow)}
            for labels in sorted(windows - self._labelsets.keys()):
                self._exec(conn, sql.LABELSET_ADD, (labels,))
                new_labelsets[labels] = self._exec(conn, sql.LABELSET_ID, (labels,)).fetchone()[0]
            seen: dict[str, tuple[float, float]] = {}  # source → (first, last) wall of its windows
            sources = []  # (source id, statement, params, may be dropped alone): written last, sorted
            for row in pending:
                if isinstance(row, SourceRow):
                    sources.append((row.id, sql.INSERT[SourceRow], row, True))
                    continue
                params = row
                if isinstance(row, WindowRow):
                    params = row.params(self._labelsets.get(row.labels) or new_labelsets[row.labels])
                if not self._write(conn, sql.INSERT[type(row)], params, one_by_one, type(row).__name__):
                    rejected += 1
                elif isinstance(row, WindowRow):
                    lo, hi = seen.get(row.source, (row.wall, row.wall))
                    seen[row.source] = (min(lo, row.wall), max(hi, row.wall))
            for source, (lo, hi) in seen.items():  # once per source and batch, not per window
                sources.append((source, sql.SOURCE_SEEN, (source, lo, hi), False))
                sources.append((source, sql.SOURCE_TOUCH, (hi, hi, lo, lo, source), False))
            # sorted() is stable: each source's own rows keep their order.
            for _, statement, params, alone in sorted(sources, key=lambda s: s[0]):
                if not self._write(conn, statement, params, one_by_one and alone, "SourceRow"):
                    rejected += 1
            conn.execute("COMMIT")
        except self.db.Error as exc:
            if conn is not None and self.db.alive(conn):
                try:
                    conn.execute("ROLLBACK")
                except self.db.Error:
                    pass
            if isinstance(exc, self.db.Retryable):  # full disk, read-only, locked, server gone: retry later
                self._write_failed(exc, len(pending))
                return False
            if not one_by_one:  # find the rows the database rejects; keep the rest
                return self._commit(pending, one_by_one=True)
            self._count_error(f"history rows rejected: {first_line(exc)}")
            with self._count_lock:
                self.dropped += len(pending)
            return True  # rows the database itself rejects would fail forever
        self._labelsets.update(new_labelsets)
        with self._count_lock:
            self.dropped += rejected
        self.written += len(pending) - rejected
        if self.last_error is not None and self._last_log > -math.inf:
            log.info("history database %s writable again", self.path)
            self.last_error, self._last_log = None, -math.inf
        return True

    def _write_failed(self, exc: Exception, n: int) -> None:
        self.errors += 1
        self.last_error = str(exc).strip()
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:  # loud, but once a minute rather than a flood
            self._last_log = now
            log.error("cannot write history to %s: %s (%d failed writes so far; %d rows waiting)",
                      self.path, self.last_error, self.errors, n)

    def _count_error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        log.warning("%s", message)

    # --- pruning (writer thread) -------------------------------------------------------------------------
    def _newest_wall(self) -> float | None:
        """The newest window's wall time, or None (no windows, or the database unreadable)."""
        try:
            walls = [self._exec(self._conn, sql.NEWEST_WALL, (sid,)).fetchone()[0]
                     for (sid,) in self._exec(self._conn, sql.SOURCE_IDS).fetchall()]
        except self.db.Error:
            return None
        walls = [w for w in walls if w is not None]
        return max(walls) if walls else None

    def _prune_anchor(self) -> tuple[float, float]:
        """``(wall, monotonic)`` that pruning counts age from: the newest window (the clock, when
        earlier or when there is none) at this moment."""
        now, newest = self._clock(), self._newest_wall()
        if newest is not None and newest > now + CLOCK_NOTE_S:
            log.warning("history: the newest window is dated %s, after the clock (%s): the clock went back, "
                        "or was ahead when it was written", _utc(newest), _utc(now))
        return (now if newest is None else min(now, newest)), time.monotonic()

    def _prune_time(self) -> float:
        """Now, for pruning: the clock, but never further than the monotonic clock has run since
        the anchor (a wall clock that jumps ahead deletes nothing)."""
        wall, mono = self._age_from
        now = self._clock()
        counted = min(now, wall + (time.monotonic() - mono))
        if now - counted > CLOCK_NOTE_S and not self._clock_noted:
            self._clock_noted = True
            log.warning("history: the clock (%s) is %.1f days past the newest window found at start-up (%s, "
                        "plus the time since): rows are pruned by the latter, so nothing recent is lost to a "
                        "clock set wrong", _utc(now), (now - counted) / 86400.0, _utc(wall))
        return counted

    def _prune(self, now: float | None) -> int:
        """Delete rows older than the retention before ``now`` (default: ``_prune_time``)."""
        cutoff = (self._prune_time() if now is None else float(now)) - self.retention_days * 86400.0
        conn = self._writer()
        n = 0
        conn.execute(self.db.begin)
        try:
            for (sid,) in conn.execute(sql.SOURCE_IDS).fetchall():
                n += self._exec(conn, sql.PRUNE_WINDOWS, (sid, cutoff)).rowcount
                n += self._exec(conn, sql.PRUNE_ALERTS, (sid, cutoff)).rowcount
                n += self._exec(conn, sql.PRUNE_SEGMENTS, (sid, cutoff, cutoff)).rowcount
            n += self._exec(conn, sql.PRUNE_SOURCES, (cutoff,)).rowcount
            conn.execute("COMMIT")
        except self.db.Error:
            if self.db.alive(conn):
                conn.execute("ROLLBACK")
            raise
        if n:
            log.info("history: pruned %d rows older than %g days (before %s)", n, self.retention_days, _utc(cutoff))
        return n


def _utc(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall))
