"""Socket.IO handlers: client → server events of docs/events.md.

Every handler validates its payload and acks ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``; nothing a client sends raises to it.
"""

from __future__ import annotations

import logging
import threading

from flask import request
from flask_socketio import join_room, leave_room

from server.web.uploads import UploadError

log = logging.getLogger(__name__)

SOURCE_KINDS = ("mic", "file", "demo", "upload", "stream")


class RequestError(Exception):
    """A client request was malformed; the message goes back in the ack."""


def room(source_id: str) -> str:
    return f"source:{source_id}"


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


def _obj(data, event: str) -> dict:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RequestError(f"{event}: payload must be a JSON object, got {type(data).__name__}.")
    return data


def _str(data: dict, key: str, event: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"{event}: '{key}' must be a non-empty string.")
    return value.strip()


def parse_source_spec(data, uploads=None, event: str = "start_source") -> dict:
    """Validate a start_source payload into the engine's spec (uploads → file)."""
    data = _obj(data, event)
    kind = data.get("kind")
    if kind not in SOURCE_KINDS:
        raise RequestError(f"{event}: 'kind' must be one of {', '.join(SOURCE_KINDS)}; got {kind!r}.")
    spec: dict = {"kind": kind}
    if kind == "mic":
        device = data.get("device")
        if isinstance(device, bool) or not (device is None or isinstance(device, (int, str))):
            raise RequestError(f"{event}: 'device' must be a device index, a name, or null.")
        if isinstance(device, str) and device.strip().lstrip("-").isdigit():
            device = int(device)
        spec["device"] = device
    elif kind == "file":
        spec["path"] = _str(data, "path", event)
    elif kind == "stream":
        url = _str(data, "url", event)
        if not url.lower().startswith(("http://", "https://")) or len(url) < 12:
            raise RequestError(f"{event}: 'url' must be an http:// or https:// stream address, got {url!r}.")
        spec["url"] = url
    elif kind == "upload":
        if uploads is None:
            raise RequestError(f"{event}: uploads are not enabled.")
        try:
            item = uploads.get(_str(data, "upload_id", event))
        except UploadError as exc:
            raise RequestError(str(exc)) from None
        spec = {"kind": "file", "path": item["path"], "label": item["name"]}
    if "label" in data and kind != "upload":
        spec["label"] = _str(data, "label", event)
    if data.get("hop") is not None:
        hop = data["hop"]
        if isinstance(hop, bool) or not isinstance(hop, (int, float)):
            raise RequestError(f"{event}: 'hop' must be a number of seconds.")
        spec["hop"] = float(hop)
    return spec


def parse_rules_request(data, event: str = "set_rules") -> list:
    """The ``rules`` list of a set_rules payload (the engine checks each rule)."""
    rules = _obj(data, event).get("rules")
    if not isinstance(rules, list):
        raise RequestError(f"{event}: 'rules' must be a list of rules (an empty list removes them all).")
    return rules


def parse_monitoring_request(data, event: str = "set_monitoring") -> dict:
    """``{"smoothing"?, "segments"?}`` → keyword arguments for ``Engine.set_monitoring``."""
    data = _obj(data, event)
    extra = sorted(set(data) - {"smoothing", "segments"})
    if extra:
        raise RequestError(f"{event}: unknown field(s) {', '.join(extra)}; use 'smoothing' and/or 'segments'.")
    out = {k: data[k] for k in ("smoothing", "segments") if data.get(k) is not None}
    if not out:
        raise RequestError(f"{event}: give 'smoothing' and/or 'segments', e.g. {{\"segments\": {{\"min_duration\": 15}}}}.")
    for k, v in out.items():
        if not isinstance(v, dict):
            raise RequestError(f"{event}: '{k}' must be an object.")
    return out


def merge_monitoring(engine, wanted: dict) -> dict:
    """Segment settings are patched (unnamed keys keep their values); smoothing is replaced whole."""
    if "segments" in wanted:
        wanted = {**wanted, "segments": {**(engine.monitoring().get("segments") or {}), **wanted["segments"]}}
    return wanted


def known_source(engine, source_id: str, event: str) -> str:
    if source_id not in engine.source_ids():
        raise RequestError(f"{event}: no running source with id {source_id!r}.")
    return source_id


def register(socketio, engine, watchers: Watchers, uploads=None) -> None:
    """Attach the handlers to ``socketio``."""
    from server.engine import EngineError

    def guarded(event, fn):
        def handler(data=None):
            try:
                return {"ok": True, **(fn(data) or {})}
            except (RequestError, EngineError) as exc:
                return {"ok": False, "error": str(exc)}
            except Exception as exc:  # never let a bug surface as a dropped ack
                log.exception("%s failed", event)
                return {"ok": False, "error": f"{event} failed: {type(exc).__name__}: {exc}"}
        handler.__name__ = f"on_{event}"
        socketio.on_event(event, handler)

    @socketio.on("connect")
    def on_connect(auth=None):
        payload = engine.sources_payload()
        watchers.connect(request.sid, [s["id"] for s in payload.get("sources", [])])
        socketio.emit("sources", payload, to=request.sid)

    @socketio.on("disconnect")
    def on_disconnect(*_args):
        watchers.disconnect(request.sid)

    def start_source(data):
        spec = parse_source_spec(data, uploads)
        source_id = engine.start_source(spec)
        watchers.add(request.sid, source_id)
        return {"id": source_id}

    def stop_source(data):
        data = _obj(data, "stop_source")
        source_id = _str(data, "id", "stop_source")
        engine.stop_source(source_id)
        return {"id": source_id}

    def watch(data):
        data = _obj(data, "watch")
        wanted = data.get("sources")
        all_ids = [s["id"] for s in engine.sources_payload().get("sources", [])]
        if wanted is None or wanted == "all":
            watchers.watch(request.sid, None, all_ids)
            return {"sources": all_ids}
        if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted):
            raise RequestError("watch: 'sources' must be a list of source ids (or \"all\").")
        unknown = sorted(set(wanted) - set(all_ids))
        if unknown:
            raise RequestError(f"watch: unknown source id(s): {', '.join(unknown)}.")
        watchers.watch(request.sid, set(wanted), all_ids)
        return {"sources": sorted(set(wanted))}

    def select_model(data):
        data = _obj(data, "select_model")
        name = _str(data, "name", "select_model")
        engine.select_model(name)
        return {"name": name}

    def set_rules(data):
        source_id = known_source(engine, _str(_obj(data, "set_rules"), "source", "set_rules"), "set_rules")
        rules = engine.set_rules(source_id, parse_rules_request(data))
        return {"source": source_id, "rules": rules}

    def set_monitoring(data):
        return {"monitoring": engine.set_monitoring(**merge_monitoring(engine, parse_monitoring_request(data)))}

    guarded("start_source", start_source)
    guarded("set_rules", set_rules)
    guarded("set_monitoring", set_monitoring)
    guarded("stop_source", stop_source)
    guarded("watch", watch)
    guarded("select_model", select_model)
