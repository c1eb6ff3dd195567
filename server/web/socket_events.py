"""Socket.IO handlers: client → server events of docs/events.md.

Every handler validates its payload and acks ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``; nothing a client sends raises to it.
"""

from __future__ import annotations

import logging
import secrets
import threading

from flask import request
from flask_socketio import join_room, leave_room
from socketio.exceptions import ConnectionRefusedError

from server import schemas
from server.sinks.socketio_sink import room
from server.web.request_parsing import (RequestError, checked, merge_monitoring, parse_model_request,
                                        parse_monitoring_request, parse_rules_request, parse_source_id,
                                        parse_source_request, rules_reply, unsaved_settings)
from server.web.sources_view import sources_payload

log = logging.getLogger(__name__)


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


def internal_error(what: str) -> str:
    """Log the exception under a short id; the client gets the id only (no traceback, no class name)."""
    log_id = secrets.token_hex(4)
    log.exception("%s failed [log id %s]", what, log_id)
    return f"internal error (log id {log_id})"


def register(socketio, engine, watchers: Watchers, uploads=None, *, media_dirs=(), guard=None, store=None) -> None:
    """Attach the handlers to ``socketio``; ``guard`` (``server.web.auth.Guard``) vets connections;
    ``store``: the history store whose status the ``sources`` event carries (or None)."""
    from server.engine import EngineError

    def guarded(event, fn):
        def handler(data=None):
            try:
                reply = {"ok": True, **(fn(data) or {})}
                warning = unsaved_settings(engine)
                return {**reply, "saved": False, "warning": warning} if warning else reply
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
        payload = sources_payload(engine, store)
        watchers.connect(request.sid, [s["id"] for s in payload.get("sources", [])])
        socketio.emit("sources", payload, to=request.sid)

    @socketio.on("disconnect")
    def on_disconnect(*_args):
        watchers.disconnect(request.sid)

    @socketio.on_error_default
    def on_error(_exc):  # a handler outside ``guarded`` (connect) failed: log, answer nothing revealing
        return {"ok": False, "error": internal_error("socket event")}

    def start_source(data):
        spec = parse_source_request(data, uploads, media_dirs=media_dirs)
        source_id = engine.start_source(spec)
        watchers.add(request.sid, source_id)
        return {"id": source_id}

    def stop_source(data):
        source_id = parse_source_id(engine, data, "stop_source")
        engine.stop_source(source_id)
        return {"id": source_id}

    def restart_source(data):
        source_id = parse_source_id(engine, data, "restart_source")
        engine.restart_source(source_id)
        return {"id": source_id}

    def watch(data):
        wanted = checked("watch", schemas.check_event, "watch", data).get("sources")
        all_ids = [s["id"] for s in engine.status().get("sources", [])]
        if wanted is None:
            watchers.watch(request.sid, None, all_ids)
            return {"sources": all_ids}
        unknown = sorted(set(wanted) - set(all_ids))
        if unknown:
            raise RequestError(f"watch: unknown source id(s): {', '.join(unknown)}.")
        watchers.watch(request.sid, set(wanted), all_ids)
        return {"sources": sorted(set(wanted))}

    def select_model(data):
        name = parse_model_request(data)
        engine.select_model(name)
        return {"name": name}

    def set_rules(data):
        source_id, rules = parse_rules_request(engine, data)
        return rules_reply(engine, source_id, engine.set_rules(source_id, rules))

    def set_monitoring(data):
        return {"monitoring": engine.set_monitoring(**merge_monitoring(engine, parse_monitoring_request(data)))}

    guarded("start_source", start_source)
    guarded("set_rules", set_rules)
    guarded("set_monitoring", set_monitoring)
    guarded("stop_source", stop_source)
    guarded("restart_source", restart_source)
    guarded("watch", watch)
    guarded("select_model", select_model)
