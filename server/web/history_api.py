"""REST API over the history store (docs/api.md, "History"): windows, segments, alerts, summary, exports.

Every route takes ``source`` (required), ``from`` and ``to`` (unix seconds; default the last
24 h); the lists (windows, segments, alerts) also ``limit``. Errors are JSON ``{"error": "..."}``:
400 for bad parameters, 404 for a source the history has never seen, 503 when the server runs
without a history store.

Lists and exports are streamed: the store reads them in pages (``history_reader``) and they go
out in chunks, so a request's memory stays bounded whatever its range. ``HEAVY_AT_ONCE``
requests read and encode at a time (the others wait their turn) and none holds its turn while
its client is slow to take a chunk, so the live path keeps the CPU. ``streaming`` bounds how
long a client may take and how many such responses are in flight (503 beyond).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import threading
import time
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, jsonify, request

from server import heap, schemas
from server.web import streaming
from server.web.sources_view import NO_HISTORY


bp = Blueprint("history_api", __name__, url_prefix="/api")

DEFAULT_RANGE_S = 24 * 3600.0
DEFAULT_LIMIT = 10000
MAX_LIMIT = schemas.MAX_HISTORY_LIMIT
HEAVY_AT_ONCE = 2  # requests reading and encoding history at once
CHUNK_ROWS = 200  # rows encoded per turn and sent as one chunk

_turns = threading.BoundedSemaphore(HEAVY_AT_ONCE)
_slots = streaming.StreamSlots()


class HistoryRequestError(Exception):
    def __init__(self, message: str, status: int = 400, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


@bp.errorhandler(HistoryRequestError)
def _request_error(exc: HistoryRequestError):
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
    return jsonify(error=str(exc)), exc.status, headers


def _store():
    store = current_app.extensions.get("genre_store")
    if store is None:
        raise HistoryRequestError("History is not enabled on this server.", 503)
    return store


def _args(kind: str) -> dict:
    try:
        return schemas.check_query(request.args, kind)
    except schemas.SchemaError as exc:
        raise HistoryRequestError(f"{exc}.") from None


def _query(kind: str = "range") -> tuple[object, str, float, float]:
    """(store, source, from, to) from the query string, validated."""
    args = _args(kind)
    store = _store()
    source = args.get("source")
    if not source:
        raise HistoryRequestError("Give the source id as ?source=ID.")
    t_to = args.get("to", min(time.time(), schemas.MAX_UNIX_TIME))
    t_from = args.get("from", max(0.0, t_to - DEFAULT_RANGE_S))
    if t_from > t_to:
        raise HistoryRequestError(f"'from' ({t_from:g}) is after 'to' ({t_to:g}).")
    if not store.has_source(source):
        raise HistoryRequestError(f"No history for source {source!r}.", 404)
    return store, source, t_from, t_to


def _limit() -> int:
    return _args("history").get("limit", DEFAULT_LIMIT)


def _chunks(pieces):
    """``pieces`` (strings) joined ``CHUNK_ROWS`` at a time, each chunk made during a turn and
    sent outside it."""
    pieces = iter(pieces)
    while True:
        with _turns:
            chunk = "".join(itertools.islice(pieces, CHUNK_ROWS))
        if not chunk:
            return
        yield chunk


def _streamed(pieces, mimetype: str) -> Response:
    """A response streaming ``pieces`` under ``streaming``'s deadlines; 503 when too many are in flight.
    When the last one in flight ends, the heap its pages and chunks took goes back to the OS."""
    client = request.remote_addr or "?"
    if not _slots.take(client):
        raise HistoryRequestError("Too many history lists and exports are being sent at once; try again shortly.",
                                  503, retry_after=5)

    def done():
        if _slots.give_back(client):  # many request threads, each in its own malloc arena, left free memory behind
            heap.trim()

    body = streaming.Bounded(_chunks(pieces), request.environ.get("gunicorn.socket"), done)
    return Response(body, mimetype=mimetype)


def _json_response(items) -> Response:
    return _streamed(_json_list(items), "application/json")


@bp.get("/history")
def history():
    store, source, t_from, t_to = _query("history")
    return _json_response(store.iter_windows(source, t_from, t_to, _limit()))


@bp.get("/history/status")
def history_status():
    """Whether history is on, and whether it was reset at start-up (a damaged file moved aside)."""
    _args("none")
    store = current_app.extensions.get("genre_store")
    return jsonify(store.status() if store is not None else NO_HISTORY)


@bp.get("/history/sources")
def history_sources():
    _args("none")
    return jsonify(sources=_store().sources())


@bp.get("/segments")
def segments():
    store, source, t_from, t_to = _query("history")
    return _json_response(store.iter_segments(source, t_from, t_to, _limit()))


@bp.get("/alerts")
def alerts():
    store, source, t_from, t_to = _query("history")
    return _json_response(store.iter_alerts(source, t_from, t_to, _limit()))


@bp.get("/summary")
def summary():
    store, source, t_from, t_to = _query()
    with _turns:
        totals = store.summary(source, t_from, t_to)
    return jsonify({"source": source, "from": t_from, "to": t_to, **totals})


# --- exports -----------------------------------------------------------------------------------------------
def _iso(wall) -> str:
    return "" if wall is None else datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds")


def _filename(kind: str, source: str, t_from: float, t_to: float, ext: str) -> str:
    def stamp(x):
        return datetime.fromtimestamp(x, timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", source)[:60] or "source"
    return f"genre-{kind}_{safe}_{stamp(t_from)}-{stamp(t_to)}.{ext}"


def _download(body, kind: str, source: str, t_from: float, t_to: float, ext: str) -> Response:
    response = _streamed(body, "text/csv" if ext == "csv" else "application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{_filename(kind, source, t_from, t_to, ext)}"'
    return response


def _csv_rows(header: list, rows):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    yield buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow(row)
        yield buf.getvalue()


def _json_list(items):
    yield "["
    for i, item in enumerate(items):
        yield ("," if i else "") + "\n" + json.dumps(item)
    yield "\n]\n"


def _fmt(x):
    return "" if x is None else x


@bp.get("/export/windows.<ext>")
def export_windows(ext):
    if ext not in ("csv", "json"):
        raise HistoryRequestError("Export as windows.csv or windows.json.", 404)
    store, source, t_from, t_to = _query()
    windows = store.iter_windows(source, t_from, t_to)
    if ext == "json":
        return _download(_json_list(windows), "windows", source, t_from, t_to, ext)
    labels = store.window_labels(source, t_from, t_to)
    header = (["wall", "time_utc", "t", "model", "content", "top", "confidence", "uncertain", "level_db"]
              + [f"prob_{lab}" for lab in labels] + [f"smoothed_{lab}" for lab in labels])

    def rows():
        for w in windows:
            sm = w["smoothed"] or {}
            yield ([w["wall"], _iso(w["wall"]), _fmt(w["t"]), _fmt(w["model"]), w["content"], _fmt(w["top"]),
                    _fmt(w["confidence"]), int(w["uncertain"]), _fmt(w["level_db"])]
                   + [_fmt(w["probs"].get(lab)) for lab in labels] + [_fmt(sm.get(lab)) for lab in labels])

    return _download(_csv_rows(header, rows()), "windows", source, t_from, t_to, ext)


@bp.get("/export/segments.<ext>")
def export_segments(ext):
    if ext not in ("csv", "json"):
        raise HistoryRequestError("Export as segments.csv or segments.json.", 404)
    store, source, t_from, t_to = _query()
    segs = store.iter_segments(source, t_from, t_to)
    if ext == "json":
        return _download(_json_list(segs), "segments", source, t_from, t_to, ext)
    header = ["start_wall", "end_wall", "start_utc", "end_utc", "start", "end", "duration_s", "genre",
              "mean_confidence", "windows", "open"]
    rows = ([s["start_wall"], _fmt(s["end_wall"]), _iso(s["start_wall"]), _iso(s["end_wall"]), _fmt(s["start"]),
             _fmt(s["end"]), "" if s["end_wall"] is None else round(s["end_wall"] - s["start_wall"], 3),
             s["genre"], _fmt(s["mean_confidence"]), s["windows"], int(s["open"])] for s in segs)
    return _download(_csv_rows(header, rows), "segments", source, t_from, t_to, ext)
