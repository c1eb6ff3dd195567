"""The history reader: the queries the history API and exports ask, on SQLite or PostgreSQL.

Each query borrows a read connection from the dialect (SQLite: a fresh one, WAL lets it read
beside the writer; PostgreSQL: a small pool), so a reader serves any thread and needs no writer
in its process. All times are wall-clock unix seconds.
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


def open_reader(target) -> "HistoryReader":
    """A reader of the history at ``target`` (as for ``dialect_for``), its schema set up if new.
    Raises ``StoreError`` when it cannot be used."""
    db = dialect_for(target)
    conn, _ = db.open_writer()  # schema and migrations only: this process writes nothing
    conn.close()
    return HistoryReader(db)


class HistoryReader:
    """Queries on a dialect (``history_sql``); ``close()`` hands back its idle connections."""

    def __init__(self, db):
        self.db = db
        self.path = db.path

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

    def iter_windows(self, source: str, t_from=None, t_to=None, limit: int | None = None) -> Iterator[dict]:
        """Windows of ``source`` with ``t_from <= wall <= t_to``, oldest first, streamed."""
        with self.db.reader() as conn:
            labelsets = self._labels_by_id(conn)
            where, args = self._range("wall", t_from, t_to)
            sql = ("SELECT wall, t, model, top, confidence, uncertain, labelset, probs, smoothed, level_db, content "
                   f"FROM windows WHERE source=?{where} ORDER BY wall")
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            for wall, t, model, top, conf, unc, lid, probs, smoothed, level, content in self.db.stream(
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
        with self.db.reader() as conn:
            labelsets = self._labels_by_id(conn)
            rows = conn.execute(self.db.sql(f"SELECT labelset, MIN(wall) FROM windows WHERE source=?{where} "
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
