"""Durable history: every window, segment and alert per source, in one SQLite file.

``HistoryStore`` is an engine sink. Its ``on_*`` methods only drop the payload
into a bounded queue (never blocking the worker); one writer thread owns the
write connection, turns payloads into rows and commits them in batches at
least every ``commit_interval`` seconds. WAL mode with ``synchronous=NORMAL``
means a committed batch survives ``kill -9`` of the process, so at most the
last ``commit_interval`` (+ the commit itself) of windows can be lost.

When the disk is full or the file read-only, the failed batch is kept and
retried (up to ``max_pending`` rows, then the oldest are dropped), the failure
is logged at most once a minute and counted in ``errors``; capture carries on.

Queries open a fresh read connection per call (WAL lets readers run beside
the writer). All query times are wall-clock unix seconds.

The same store runs on PostgreSQL (``open_store("postgresql://user@host:port/db")``), shared by
several processes: only the dialect bits live in ``store_sql``. There, every COMMIT is durable at
once; labelset ids come from the database, so concurrent writers agree on them.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from typing import Iterator

from ..config import MAX_HOP_SECONDS
from ..model.content import CONTENT_LABELS, MUSIC, NOT_MUSIC
from ..monitor.classified import ClassifiedWindow
from .history_sql import SCHEMA, SCHEMA_VERSION, StoreError, first_line, dialect_for

__all__ = ["HistoryStore", "StoreError", "open_store", "SCHEMA", "SCHEMA_VERSION"]

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
LOG_EVERY_S = 60.0
# A window stands for the time until the next one, but never more than this:
# a longer gap means nothing was captured (source stopped, server down).
SUMMARY_MAX_GAP_S = MAX_HOP_SECONDS
SUMMARY_DEFAULT_HOP_S = 1.0

# Fields of a source description kept as its "spec" (the rest are live counters).
_SPEC_SKIP = {"state", "error", "notice", "overflows", "skipped", "windows", "reconnects"}


def _num(x) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _int(x) -> int | None:
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def _text(x) -> str | None:
    """Text for a TEXT column; PostgreSQL refuses NUL characters, so they go."""
    if x is None:
        return None
    return (x if isinstance(x, str) else str(x)).replace("\0", "")


def open_store(target, **kwargs) -> "HistoryStore":
    """A history store on a file path, ``sqlite:///path`` or ``postgresql://user@host:port/db``;
    keyword arguments as for ``HistoryStore``. Raises ``StoreError`` when it cannot be used."""
    return HistoryStore(target, **kwargs)


class HistoryStore:
    """History sink on SQLite or PostgreSQL; see the module docstring."""

    def __init__(self, path, retention_days: float = 30.0, commit_interval: float = 0.5,
                 queue_size: int = 10000, max_pending: int = 100000):
        self._db = dialect_for(path)
        self.path = self._db.path  # the file, or the URL without its password
        self.backend = self._db.name
        self.retention_days = float(retention_days)
        self.commit_interval = float(commit_interval)
        self.max_pending = int(max_pending)
        self.dropped = 0  # payloads lost: queue full, or pending overflow while the disk was failing
        self.errors = 0  # failed commits and unusable payloads
        self.written = 0  # rows committed
        self.last_error: str | None = None
        self._count_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._closed = False
        self._labelsets: dict[str, int] = {}  # committed labelsets only: ids come from the database
        self._last_log = -math.inf
        self._conn, failure = self._db.open_writer()
        self.reset = self._db.reset  # {"at", "damaged", "reason"} when a damaged file was moved aside
        if failure is not None:
            self._write_failed(failure, 0)
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    # --- sink methods (engine worker thread: fast, never raise) --------------------------------------------
    def _put(self, kind: str, payload) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait((kind, payload))
        except queue.Full:
            with self._count_lock:
                self.dropped += 1

    def on_prediction(self, payload: dict) -> None:
        self._put("window", payload)

    def on_segment(self, payload: dict) -> None:
        self._put("segment", payload)

    def on_alert(self, payload: dict) -> None:
        self._put("alert", payload)

    def on_sources(self, payload: dict) -> None:
        self._put("sources", payload)

    # --- control -----------------------------------------------------------------------------------------
    def _call(self, kind: str, arg=None, timeout: float = 30.0):
        """Run an operation on the writer thread and wait for its result."""
        if self._closed or not self._thread.is_alive():
            raise StoreError("the history store is closed")
        box: dict = {"done": threading.Event()}
        self._queue.put((kind, (box, arg)), timeout=timeout)
        if not box["done"].wait(timeout):
            raise StoreError(f"history writer did not answer within {timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def flush(self, timeout: float = 30.0) -> bool:
        """Commit everything queued so far; True when it is all in the database."""
        return bool(self._call("flush", None, timeout))

    def prune(self, now: float | None = None, timeout: float = 60.0) -> int:
        """Delete rows older than the retention period; return how many."""
        return int(self._call("prune", now, timeout) or 0)

    def close(self, timeout: float = 30.0) -> None:
        if self._closed:
            return
        try:
            self._call("close", None, timeout)
        except (StoreError, queue.Full):
            log.warning("history writer did not stop cleanly")
        self._closed = True
        self._thread.join(timeout)
        self._db.close()

    def stats(self) -> dict:
        return {"path": self.path, "backend": self.backend, "queued": self._queue.qsize(),
                "written": self.written, "dropped": self.dropped, "errors": self.errors,
                "last_error": self.last_error, "reset": self.reset}

    def status(self) -> dict:
        """What the dashboard shows: history on, whether it was reset at start-up, the last write error."""
        return {"enabled": True, "reset": self.reset, "last_error": self.last_error}

    # --- writer thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        pending: list[tuple[str, tuple]] = []  # (sql key, params) waiting for the next commit
        first_pending = None
        next_prune = time.monotonic() + 5.0  # not at once: let the server start
        while True:
            wait = self.commit_interval if first_pending is None else max(
                0.0, first_pending + self.commit_interval - time.monotonic())
            try:
                kind, payload = self._queue.get(timeout=wait)
            except queue.Empty:
                kind, payload = None, None
            if kind in ("window", "segment", "alert", "sources"):
                try:
                    pending.extend(getattr(self, "_rows_" + kind)(payload))
                except Exception as exc:  # a malformed payload loses itself only
                    self._count_error(f"unusable {kind} payload: {exc!r}")
                if first_pending is None and pending:
                    first_pending = time.monotonic()
                if len(pending) > self.max_pending:
                    lost = len(pending) - self.max_pending
                    del pending[:lost]
                    with self._count_lock:
                        self.dropped += lost
            due = first_pending is not None and time.monotonic() - first_pending >= self.commit_interval
            if pending and (due or kind in ("flush", "prune", "close")):
                if self._commit(pending):
                    pending.clear()
                    first_pending = None
                else:  # retry after another interval
                    first_pending = time.monotonic()
            if kind in ("flush", "prune", "close"):
                box, arg = payload
                try:
                    if kind == "flush":
                        box["result"] = not pending
                    elif kind == "prune":
                        box["result"] = self._prune(arg)
                except Exception as exc:
                    box["error"] = exc
                box["done"].set()
                if kind == "close":
                    self._conn.close()
                    return
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_S
                try:
                    self._prune(None)
                except self._db.Error as exc:
                    self._write_failed(exc, 0)

    def _writer(self):
        """The write connection; a lost PostgreSQL connection is replaced (failing: retry later)."""
        if not self._db.alive(self._conn):
            self._conn.close()
            self._conn = self._db.connect()
        return self._conn

    def _exec(self, conn, sql: str, params=()):
        return conn.execute(self._db.sql(sql), params)

    def _row(self, conn, key: str, params, one_by_one: bool) -> bool:
        """Write one row; with ``one_by_one``, a row the database rejects is dropped alone."""
        if not one_by_one:
            self._exec(conn, _SQL[key], params)
            return True
        conn.execute("SAVEPOINT one_row")
        try:
            self._exec(conn, _SQL[key], params)
        except self._db.Error as exc:
            if isinstance(exc, self._db.Retryable):
                raise
            conn.execute("ROLLBACK TO SAVEPOINT one_row")
            self._count_error(f"history {key} row rejected: {first_line(exc)}")
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
            conn.execute(self._db.begin)
            for labels in sorted({p[7] for k, p in pending if k == "window"} - self._labelsets.keys()):
                self._exec(conn, _SQL["labelset"], (labels,))
                new_labelsets[labels] = self._exec(conn, _SQL["labelset_id"], (labels,)).fetchone()[0]
            seen: dict[str, tuple[float, float]] = {}
            sources = []
            for key, params in pending:
                if key == "source":
                    sources.append((params[0], key, params))
                    continue
                if key == "window":
                    labels = params[7]
                    params = params[:7] + (self._labelsets.get(labels) or new_labelsets[labels],) + params[8:]
                if not self._row(conn, key, params, one_by_one):
                    rejected += 1
                elif key == "window":
                    lo, hi = seen.get(params[0], (params[1], params[1]))
                    seen[params[0]] = (min(lo, params[1]), max(hi, params[1]))
            for source, (lo, hi) in seen.items():  # once per source and batch, not per window
                sources.append((source, "seen", (source, lo, hi)))
                sources.append((source, "touch", (hi, hi, lo, lo, source)))
            for _, key, params in sorted(sources, key=lambda s: s[0]):  # stable: keeps each source's order
                if not self._row(conn, key, params, one_by_one and key == "source"):
                    rejected += 1
            conn.execute("COMMIT")
        except self._db.Error as exc:
            if conn is not None and self._db.alive(conn):
                try:
                    conn.execute("ROLLBACK")
                except self._db.Error:
                    pass
            if isinstance(exc, self._db.Retryable):  # full disk, read-only, locked, server gone: retry later
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

    # --- payload → rows (the window row names its labelset by its labels; _commit swaps in the id) ---------
    def _rows_window(self, w: ClassifiedWindow) -> list:
        labels = list(w.labels)
        probs = [round(float(x), 5) for x in w.probs]
        if len(probs) != len(labels):
            raise ValueError(f"{len(probs)} probs for {len(labels)} labels")
        smoothed = None if w.smoothed is None else json.dumps([round(float(x), 5) for x in w.smoothed])
        wall = _num(w.wall)
        if wall is None:
            raise ValueError(f"wall {w.wall!r} is not a time")
        confidence = None if w.confidence is None else round(w.confidence, 5)
        return [("window", (
            _text(w.source), wall, _num(w.t), _text(w.model), _text(w.top), _num(confidence), int(w.uncertain),
            json.dumps([_text(x) for x in labels]), json.dumps(probs), smoothed, _num(w.level_db), _text(w.content)))]

    def _rows_segment(self, p: dict) -> list:
        seg = p["segment"] if isinstance(p.get("segment"), dict) else p
        start_wall = round(float(seg["start_wall"]), 3)  # the upsert key: rounded the same way every time
        end_wall = _num(seg.get("end_wall"))
        return [("segment", (
            _text(p["source"]), start_wall, end_wall, _num(seg.get("start")), _num(seg.get("end")),
            _text(seg.get("genre")), _num(seg.get("mean_confidence")), int(seg.get("windows") or 0),
            int(bool(seg.get("open")))))]

    def _rows_alert(self, p: dict) -> list:
        return [("alert", (
            _text(p["source"]), float(p["wall"]), _num(p.get("t")), _int(p.get("rule")), _text(p.get("type")),
            _text(p.get("state")), _text(p.get("message")), _text(json.dumps(p, default=str))))]

    def _rows_sources(self, p: dict) -> list:
        now = time.time()
        rows = []
        for s in p.get("sources") or []:
            spec = {k: v for k, v in s.items() if k not in _SPEC_SKIP and k != "id"}
            rows.append(("source", (_text(s["id"]), _text(s.get("kind")), _text(s.get("label")),
                                    _text(json.dumps(spec, default=str)), now, now)))
        return rows

    # --- pruning (writer thread) -------------------------------------------------------------------------
    def _prune(self, now: float | None) -> int:
        cutoff = (time.time() if now is None else float(now)) - self.retention_days * 86400.0
        conn = self._writer()
        n = 0
        conn.execute(self._db.begin)
        try:
            ids = [r[0] for r in conn.execute("SELECT id FROM sources ORDER BY id")]
            for sid in ids:  # per source, so the (source, wall) indexes do the work
                n += self._exec(conn, "DELETE FROM windows WHERE source=? AND wall<?", (sid, cutoff)).rowcount
                n += self._exec(conn, "DELETE FROM alerts WHERE source=? AND wall<?", (sid, cutoff)).rowcount
                n += self._exec(conn, "DELETE FROM segments WHERE source=? AND start_wall<? "
                                "AND COALESCE(end_wall, start_wall)<?", (sid, cutoff, cutoff)).rowcount
            n += self._exec(conn, "DELETE FROM sources WHERE last_seen<?", (cutoff,)).rowcount
            conn.execute("COMMIT")
        except self._db.Error:
            if self._db.alive(conn):
                conn.execute("ROLLBACK")
            raise
        if n:
            log.info("history: pruned %d rows older than %g days", n, self.retention_days)
        return n

    # --- queries (any thread) ----------------------------------------------------------------------------
    def _query(self, sql: str, args=()) -> list:
        with self._db.reader() as conn:
            return conn.execute(self._db.sql(sql), list(args)).fetchall()

    @staticmethod
    def _labels_by_id(conn) -> dict[int, list]:
        return {lid: json.loads(labels) for lid, labels in conn.execute("SELECT id, labels FROM labelsets")}

    @staticmethod
    def _range(column: str, t_from, t_to) -> tuple[str, list]:
        sql, args = "", []
        if t_from is not None:
            sql += f" AND {column}>=?"
            args.append(float(t_from))
        if t_to is not None:
            sql += f" AND {column}<=?"
            args.append(float(t_to))
        return sql, args

    def iter_windows(self, source: str, t_from=None, t_to=None, limit: int | None = None) -> Iterator[dict]:
        """Windows of ``source`` with ``t_from <= wall <= t_to``, oldest first, streamed."""
        with self._db.reader() as conn:
            labelsets = self._labels_by_id(conn)
            where, args = self._range("wall", t_from, t_to)
            sql = ("SELECT wall, t, model, top, confidence, uncertain, labelset, probs, smoothed, level_db, content "
                   f"FROM windows WHERE source=?{where} ORDER BY wall")
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            for wall, t, model, top, conf, unc, lid, probs, smoothed, level, content in self._db.stream(
                    conn, sql, [source] + args):
                labels = labelsets.get(lid, [])
                yield {
                    "wall": wall, "t": t, "model": model, "content": content or MUSIC, "top": top, "confidence": conf,
                    "uncertain": bool(unc), "probs": dict(zip(labels, json.loads(probs))),
                    "smoothed": dict(zip(labels, json.loads(smoothed))) if smoothed else None,
                    "level_db": level,
                }

    def windows(self, source: str, t_from=None, t_to=None, limit: int = 10000) -> list[dict]:
        return list(self.iter_windows(source, t_from, t_to, limit))

    def window_labels(self, source: str, t_from=None, t_to=None) -> list[str]:
        """Every genre label used by ``source``'s windows in the range, in first-seen order."""
        where, args = self._range("wall", t_from, t_to)
        with self._db.reader() as conn:
            labelsets = self._labels_by_id(conn)
            rows = conn.execute(self._db.sql(f"SELECT labelset, MIN(wall) FROM windows WHERE source=?{where} "
                                             "GROUP BY labelset ORDER BY 2"), [source] + args).fetchall()
        out: list[str] = []
        for lid, _ in rows:
            out += [lab for lab in labelsets.get(lid, []) if lab not in out]
        return out

    def segments(self, source: str, t_from=None, t_to=None) -> list[dict]:
        """Segments of ``source`` overlapping ``[t_from, t_to]``, oldest first."""
        sql, args = "", []
        if t_to is not None:
            sql += " AND start_wall<=?"
            args.append(float(t_to))
        if t_from is not None:
            sql += " AND (open=1 OR COALESCE(end_wall, start_wall)>=?)"
            args.append(float(t_from))
        rows = self._query("SELECT genre, start_t, end_t, start_wall, end_wall, mean_confidence, windows, open "
                           f"FROM segments WHERE source=?{sql} ORDER BY start_wall", [source] + args)
        return [{"genre": g, "start": s, "end": e, "start_wall": sw, "end_wall": ew,
                 "mean_confidence": mc, "windows": n, "open": bool(o)}
                for g, s, e, sw, ew, mc, n, o in rows]

    def alerts(self, source: str, t_from=None, t_to=None) -> list[dict]:
        where, args = self._range("wall", t_from, t_to)
        rows = self._query("SELECT rule, type, message, t, wall, state FROM alerts "
                           f"WHERE source=?{where} ORDER BY wall", [source] + args)
        return [{"source": source, "rule": r, "type": ty, "message": m, "t": t, "wall": w, "state": s}
                for r, ty, m, t, w, s in rows]

    def summary(self, source: str, t_from=None, t_to=None) -> dict:
        """Seconds per genre from the windows: each window counts until the next one (the hop),
        capped at ``SUMMARY_MAX_GAP_S`` so gaps in capture count for nothing; the last window
        counts like the one before it. Uncertain windows count as ``"uncertain"``. Windows that
        are not music (speech, silence, noise) count in ``content``, not in ``genres``;
        ``content["music"]`` is the sum of ``genres``."""
        where, args = self._range("wall", t_from, t_to)
        sql = f"""
            WITH w AS (
                SELECT CASE WHEN content IS NOT NULL AND content<>'music' THEN content
                            WHEN uncertain<>0 THEN 'uncertain' ELSE top END AS genre,
                       COALESCE(LEAD(wall) OVER win - wall, wall - LAG(wall) OVER win, ?) AS gap
                FROM windows WHERE source=?{where} WINDOW win AS (ORDER BY wall))
            SELECT genre, SUM(LEAST(gap, ?)), COUNT(*) FROM w GROUP BY genre ORDER BY 2 DESC"""
        rows = self._query(sql, [SUMMARY_DEFAULT_HOP_S, source] + args + [SUMMARY_MAX_GAP_S])
        genres = {g: round(s, 3) for g, s, _ in rows if g not in NOT_MUSIC}
        content = {c: 0.0 for c in CONTENT_LABELS}
        content.update({g: round(s, 3) for g, s, _ in rows if g in NOT_MUSIC})
        content[MUSIC] = round(sum(genres.values()), 3)
        return {"total_seconds": round(sum(s for _, s, _ in rows), 3), "genres": genres, "content": content,
                "windows": sum(n for _, _, n in rows)}

    def sources(self) -> list[dict]:
        rows = self._query("SELECT id, kind, label, spec, first_seen, last_seen FROM sources ORDER BY first_seen")
        return [{"id": i, "kind": k, "label": lab, "spec": json.loads(s) if s else None,
                 "first_seen": f, "last_seen": last} for i, k, lab, s, f, last in rows]

    def has_source(self, source: str) -> bool:
        return bool(self._query("SELECT 1 FROM sources WHERE id=?", [source]))


# Neutral SQL (see store_sql): "?" placeholders, GREATEST/LEAST, ON CONFLICT upserts.
_SQL = {
    "window": "INSERT INTO windows(source, wall, t, model, top, confidence, uncertain, labelset, probs, "
              "smoothed, level_db, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    # A source seen only through its predictions still gets a row (so it can be queried and pruned).
    "seen": "INSERT INTO sources(id, first_seen, last_seen) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING",
    "touch": "UPDATE sources SET last_seen=GREATEST(COALESCE(last_seen, ?), ?), "
             "first_seen=LEAST(COALESCE(first_seen, ?), ?) WHERE id=?",
    "labelset": "INSERT INTO labelsets(labels) VALUES (?) ON CONFLICT(labels) DO NOTHING",
    "labelset_id": "SELECT id FROM labelsets WHERE labels=?",
    "segment": "INSERT INTO segments(source, start_wall, end_wall, start_t, end_t, genre, mean_confidence, "
               "windows, open) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source, start_wall) DO UPDATE SET "
               "end_wall=excluded.end_wall, end_t=excluded.end_t, genre=excluded.genre, "
               "mean_confidence=excluded.mean_confidence, windows=excluded.windows, open=excluded.open",
    "alert": "INSERT INTO alerts(source, wall, t, rule, type, state, message, payload) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "source": "INSERT INTO sources(id, kind, label, spec, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
              "ON CONFLICT(id) DO UPDATE SET kind=excluded.kind, label=excluded.label, spec=excluded.spec, "
              "last_seen=GREATEST(COALESCE(sources.last_seen, 0), excluded.last_seen)",
}
