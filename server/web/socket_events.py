"""Socket.IO handlers: client → server events of docs/events.md.

Every handler validates its payload and acks ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``; nothing a client sends raises to it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import urllib.parse

from flask import request
from flask_socketio import join_room, leave_room
from socketio.exceptions import ConnectionRefusedError

from server import schemas
from server.web.media import MediaPathError, resolve_media_path
from server.sinks.socketio_sink import room
from server.schemas import SchemaError
from server.web.uploads import UploadError

log = logging.getLogger(__name__)

class RequestError(Exception):
    """A client request was malformed; the message goes back in the ack."""


class Watchers:
    """Which sources each client watches: ``None`` means all, following new ones."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_sid: dict[str, set[str] | None] = {}
        self._joined: dict[str, set[str]] = {}

    def connect(self, sid: str, source_ids) -> None:
        with self._lock:
            self._by_sid[sid] = None
            self._joined[sid] = set(source_ids)
        for sid_ in source_ids:
            join_room(room(sid_))

    def disconnect(self, sid: str) -> None:
        with self._lock:
            self._by_sid.pop(sid, None)
            self._joined.pop(sid, None)

    def watch(self, sid: str, source_ids: set[str] | None, all_ids) -> None:
        with self._lock:
            old = self._joined.get(sid, set())
            new = set(all_ids) if source_ids is None else set(source_ids)
            self._by_sid[sid] = source_ids
            self._joined[sid] = new
        for s in old - new:
            leave_room(room(s))
        for s in new - old:
            join_room(room(s))

    def add(self, sid: str, source_id: str) -> None:
        """A client that started a source watches it, whatever its mode."""
        with self._lock:
            watched = self._by_sid.get(sid)
            if watched is not None:
                watched.add(source_id)
            joined = self._joined.setdefault(sid, set())
            fresh = source_id not in joined
            joined.add(source_id)
        if fresh:
            join_room(room(source_id))

    def follow_new(self, socketio, source_ids) -> None:
        """Called from the engine thread: join watch-all clients to new sources."""
        joins = []
        with self._lock:
            for sid, watched in self._by_sid.items():
                if watched is not None:
                    continue
                joined = self._joined.setdefault(sid, set())
                for s in source_ids:
                    if s not in joined:
                        joined.add(s)
                        joins.append((sid, s))
        for sid, s in joins:
            try:
                socketio.server.enter_room(sid, room(s), namespace="/")
            except Exception:  # the client left meanwhile
                log.debug("could not join %s to %s", sid, s, exc_info=True)


def checked(event: str, fn, *args):
    """``fn(*args)`` from ``server.schemas`` with its ``SchemaError`` as a ``RequestError`` naming ``event``."""
    try:
        return fn(*args)
    except SchemaError as exc:
        raise RequestError(f"{event}: {exc}.") from None


def parse_source_spec(data, uploads=None, event: str = "start_source", media_dirs=()) -> dict:
    """Validate a start_source payload into the engine's spec.

    Uploads become file specs inside the upload folder; file paths (and ``file:`` URLs)
    must lie inside ``media_dirs`` (real paths, see ``server.web.media``).
    """
    data = checked(event, schemas.check_start_source, data)
    kind = data["kind"]
    spec: dict = {"kind": kind}
    if kind == "mic":
        spec["device"] = data.get("device")
    elif kind == "file":
        spec["path"] = _media_path(data["path"], uploads, media_dirs, event)
    elif kind == "stream":
        url = data["url"]
        if url.lower().startswith("file:"):
            # A local file named as a URL: allowed only where a file path would be.
            path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
            try:
                spec = {"kind": "file", "path": _media_path(path, uploads, media_dirs, event)}
            except RequestError as exc:
                raise RequestError(f"{event}: a stream URL must be http:// or https://; file: URLs work only "
                                   f"for files inside the media folders ({str(exc).removeprefix(event + ': ')})") from None
        else:
            from server.audio.stream_source import StreamError, validate_url

            try:
                validate_url(url, allow_file=False)
            except StreamError as exc:
                raise RequestError(f"{event}: {exc}.") from None
            spec["url"] = url
    elif kind == "upload":
        if uploads is None:
            raise RequestError(f"{event}: uploads are not enabled.")
        try:
            item = uploads.get(data["upload_id"])
        except UploadError as exc:
            raise RequestError(f"{event}: {exc}") from None
        spec = {"kind": "file", "path": item["path"], "label": item["name"]}
    if "label" in data:
        spec["label"] = data["label"]
    if "hop" in data:
        spec["hop"] = data["hop"]
    return spec


def _media_path(path: str, uploads, media_dirs, event: str) -> str:
    extra = [str(uploads.dir)] if uploads is not None else []
    try:
        return resolve_media_path(path, list(media_dirs), extra)
    except MediaPathError as exc:
        raise RequestError(f"{event}: {exc}") from None


def parse_rules_request(data, event: str = "set_rules") -> list:
    """The ``rules`` list of a PUT rules body (the engine checks each rule)."""
    return checked(event, schemas.check_event, "put_rules", data)["rules"]


def parse_monitoring_request(data, event: str = "set_monitoring") -> dict:
    """``{"smoothing"?, "segments"?}`` → keyword arguments for ``Engine.set_monitoring``."""
    return checked(event, schemas.check_monitoring, data)


def merge_monitoring(engine, wanted: dict) -> dict:
    """Segment settings are patched (unnamed keys keep their values); smoothing is replaced whole."""
    if "segments" in wanted:
        wanted = {**wanted, "segments": {**(engine.monitoring().get("segments") or {}), **wanted["segments"]}}
    return wanted


def known_source(engine, source_id: str, event: str) -> str:
    if source_id not in engine.source_ids():
        raise RequestError(f"{event}: no running source with id {source_id!r}.")
    return source_id


def internal_error(what: str) -> str:
    """Log the exception under a short id; the client gets the id only (no traceback, no class name)."""
    log_id = secrets.token_hex(4)
    log.exception("%s failed [log id %s]", what, log_id)
    return f"internal error (log id {log_id})"


def register(socketio, engine, watchers: Watchers, uploads=None, *, media_dirs=(), guard=None) -> None:
    """Attach the handlers to ``socketio``; ``guard`` (``server.web.auth.Guard``) vets connections."""
    from server.engine import EngineError

    def guarded(event, fn):
        def handler(data=None):
            try:
                return {"ok": True, **(fn(data) or {})}
            except (RequestError, EngineError) as exc:
                return {"ok": False, "error": str(exc)}
            except Exception:  # never let a bug surface as a dropped ack
                return {"ok": False, "error": f"{event}: {internal_error(event)}"}
        handler.__name__ = f"on_{event}"
        socketio.on_event(event, handler)

    @socketio.on("connect")
    def on_connect(auth=None):
        if guard is not None:
            try:
                refusal = guard.socket_ok(auth)
            except Exception:  # fail closed
                refusal = internal_error("connect")
            if refusal is not None:
                log.info("Socket.IO connection refused: %s", refusal)
                raise ConnectionRefusedError(refusal)
        payload = engine.sources_payload()
        watchers.connect(request.sid, [s["id"] for s in payload.get("sources", [])])
        socketio.emit("sources", payload, to=request.sid)

    @socketio.on("disconnect")
    def on_disconnect(*_args):
        watchers.disconnect(request.sid)

    @socketio.on_error_default
    def on_error(_exc):  # a handler outside ``guarded`` (connect) failed: log, answer nothing revealing
        return {"ok": False, "error": internal_error("socket event")}

    def start_source(data):
        spec = parse_source_spec(data, uploads, media_dirs=media_dirs)
        source_id = engine.start_source(spec)
        watchers.add(request.sid, source_id)
        return {"id": source_id}

    def stop_source(data):
        source_id = checked("stop_source", schemas.check_event, "stop_source", data)["id"]
        engine.stop_source(source_id)
        return {"id": source_id}

    def restart_source(data):
        source_id = checked("restart_source", schemas.check_event, "restart_source", data)["id"]
        engine.restart_source(source_id)
        return {"id": source_id}

    def watch(data):
        wanted = checked("watch", schemas.check_event, "watch", data).get("sources")
        all_ids = [s["id"] for s in engine.sources_payload().get("sources", [])]
        if wanted is None:
            watchers.watch(request.sid, None, all_ids)
            return {"sources": all_ids}
        unknown = sorted(set(wanted) - set(all_ids))
        if unknown:
            raise RequestError(f"watch: unknown source id(s): {', '.join(unknown)}.")
        watchers.watch(request.sid, set(wanted), all_ids)
        return {"sources": sorted(set(wanted))}

    def select_model(data):
        name = checked("select_model", schemas.check_event, "select_model", data)["name"]
        engine.select_model(name)
        return {"name": name}

    def set_rules(data):
        data = checked("set_rules", schemas.check_event, "set_rules", data)
        source_id = known_source(engine, data["source"], "set_rules")
        rules = engine.set_rules(source_id, data["rules"])
        return {"source": source_id, "rules": rules}

    def set_monitoring(data):
        return {"monitoring": engine.set_monitoring(**merge_monitoring(engine, parse_monitoring_request(data)))}

    guarded("start_source", start_source)
    guarded("set_rules", set_rules)
    guarded("set_monitoring", set_monitoring)
    guarded("stop_source", stop_source)
    guarded("restart_source", restart_source)
    guarded("watch", watch)
    guarded("select_model", select_model)
