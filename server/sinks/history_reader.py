"""The history reader: the queries the history API and exports ask, on SQLite or PostgreSQL.

Each query borrows a read connection from the dialect (SQLite: a fresh one, WAL lets it read
beside the writer; PostgreSQL: a small pool), so a reader serves any thread and needs no writer
in its process. All times are wall-clock unix seconds.

Lists (windows, segments, alerts) are read in pages of ``PAGE_ROWS``, each in its own short
read, so a caller that streams them to a slow client holds neither memory nor a read
transaction (which would keep SQLite's write-ahead log from being checkpointed) meanwhile.
"""

from __future__ import annotations

import json
from typing import Iterator

from ..config import MAX_HOP_SECONDS
from ..model.content import CONTENT_LABELS, MUSIC, NOT_MUSIC
from .history_sql import dialect_for

# A window stands for the time until the next one, but never more than this:
# a longer gap means nothing was captured (source stopped, server down).
SUMMARY_MAX_GAP_S = MAX_HOP_SECONDS
SUMMARY_DEFAULT_HOP_S = 1.0
PAGE_ROWS = 1000  # rows per read: a page's memory stays small, a read's transaction short


def open_reader(target) -> "HistoryReader":
    """A reader of the history at ``target`` (as for ``dialect_for``), its schema set up if new.
    Raises ``StoreError`` when it cannot be used."""
    db = dialect_for(target)
    conn, _ = db.open_writer()  # schema and migrations only: this process writes nothing
    conn.close()
    return HistoryReader(db)


class HistoryReader:
    """Queries on a dialect (``history_sql``); ``close()`` hands back its idle connections."""

    def __init__(self, db, page_rows: int = PAGE_ROWS):
        self.db = db
        self.path = db.path
        self.page_rows = int(page_rows)

    def status(self) -> dict:
        """What the dashboard shows of a history this process only reads."""
        return {"enabled": True, "reset": self.db.reset, "last_error": None}

    def close(self) -> None:
        self.db.close()

    def _query(self, sql: str, args=()) -> list:
        with self.db.reader() as conn:
            return conn.execute(self.db.sql(sql), list(args)).fetchall()

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

    def _pages(self, select: str, key: str, where: str, args: list, limit: int | None) -> Iterator[tuple]:
        """Rows of ``SELECT {select} ... WHERE {where}`` ordered by column ``key`` (``select``'s first
        column), at most ``limit``, read ``page_rows`` at a time, each page in its own read. The
        next page starts at the last page's final ``key`` again (rows sharing it are read there
        whole), so rows with equal keys are neither lost nor repeated."""
        after, after_args = "", []
        left = limit
        while left is None or left > 0:
            n = self.page_rows if left is None else min(self.page_rows, left)
            rows = self._query(f"SELECT {select} WHERE {where}{after} ORDER BY {key} LIMIT ?",
                               args + after_args + [n])
            if len(rows) == n:
                last = rows[-1][0]
                page = [r for r in rows if r[0] != last]
                after, after_args = f" AND {key}>=?", [last]
                if not page:  # a whole page shares one key: read all its rows, then go past it
                    page = self._query(f"SELECT {select} WHERE {where} AND {key}=?", args + [last])
                    after = f" AND {key}>?"
            else:
                page = rows
            yield from page if left is None else page[:left]
            if left is not None:
                left -= len(page)
            if len(rows) < n:
                return

    def iter_windows(self, source: str, t_from=None, t_to=None, limit: int | None = None) -> Iterator[dict]:
        """Windows of ``source`` with ``t_from <= wall <= t_to``, oldest first, read in pages."""
        with self.db.reader() as conn:
            labelsets = self._labels_by_id(conn)
        where, args = self._range("wall", t_from, t_to)
        select = ("wall, t, model, top, confidence, uncertain, labelset, probs, smoothed, level_db, content "
                  "FROM windows")
        for wall, t, model, top, conf, unc, lid, probs, smoothed, level, content in self._pages(
                select, "wall", f"source=?{where}", [source] + args, limit):
            if lid not in labelsets:  # a labelset added since the first page (a new model)
                with self.db.reader() as conn:
                    labelsets = self._labels_by_id(conn)
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
        with self.db.reader() as conn:
            labelsets = self._labels_by_id(conn)
            rows = conn.execute(self.db.sql(f"SELECT labelset, MIN(wall) FROM windows WHERE source=?{where} "
                                            "GROUP BY labelset ORDER BY 2"), [source] + args).fetchall()
        out: list[str] = []
        for lid, _ in rows:
            out += [lab for lab in labelsets.get(lid, []) if lab not in out]
        return out

    def iter_segments(self, source: str, t_from=None, t_to=None, limit: int | None = None) -> Iterator[dict]:
        """Segments of ``source`` overlapping ``[t_from, t_to]``, oldest first, read in pages."""
        sql, args = "", []
        if t_to is not None:
            sql += " AND start_wall<=?"
            args.append(float(t_to))
        if t_from is not None:
            sql += " AND (open=1 OR COALESCE(end_wall, start_wall)>=?)"
            args.append(float(t_from))
        select = "start_wall, genre, start_t, end_t, end_wall, mean_confidence, windows, open FROM segments"
        for sw, g, s, e, ew, mc, n, o in self._pages(select, "start_wall", f"source=?{sql}", [source] + args, limit):
            yield {"genre": g, "start": s, "end": e, "start_wall": sw, "end_wall": ew,
                   "mean_confidence": mc, "windows": n, "open": bool(o)}

    def segments(self, source: str, t_from=None, t_to=None, limit: int | None = None) -> list[dict]:
        return list(self.iter_segments(source, t_from, t_to, limit))

    def iter_alerts(self, source: str, t_from=None, t_to=None, limit: int | None = None) -> Iterator[dict]:
        """Alerts of ``source`` with ``t_from <= wall <= t_to``, oldest first, read in pages."""
        where, args = self._range("wall", t_from, t_to)
        select = "wall, rule, type, message, t, state FROM alerts"
        for w, r, ty, m, t, s in self._pages(select, "wall", f"source=?{where}", [source] + args, limit):
            yield {"source": source, "rule": r, "type": ty, "message": m, "t": t, "wall": w, "state": s}

    def alerts(self, source: str, t_from=None, t_to=None, limit: int | None = None) -> list[dict]:
        return list(self.iter_alerts(source, t_from, t_to, limit))

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
