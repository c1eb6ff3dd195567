"""A client request as the engine takes it: one parser per action, shared by REST and Socket.IO.

``server.web.api`` and ``server.web.socket_events`` call the same function for the same
action, naming the request (``"POST /api/sources"``, ``"start_source"``) so an error
reads ``"<request>: <what is wrong>."`` whichever way it came. Shapes are checked by
``server.schemas``; what needs the server's state (the media folders, an upload, a
running source) is checked here.
"""

from __future__ import annotations

import urllib.parse

from server import schemas
from server.monitor.alerts import missing_genres
from server.schemas import SchemaError
from server.web.media import MediaPathError, resolve_media_path
from server.web.uploads import UploadError


class RequestError(Exception):
    """A client request was malformed; the message goes back to the client (ack or JSON error)."""


def checked(request: str, fn, *args):
    """``fn(*args)`` from ``server.schemas`` with its ``SchemaError`` as a ``RequestError`` naming ``request``."""
    try:
        return fn(*args)
    except SchemaError as exc:
        raise RequestError(f"{request}: {exc}.") from None


def parse_source_request(data, uploads=None, request: str = "start_source", media_dirs=()) -> dict:
    """A start_source payload (Socket.IO) or POST /api/sources body → the engine's source spec.

    Uploads become file specs inside the upload folder; file paths (and ``file:`` URLs)
    must lie inside ``media_dirs`` (real paths, see ``server.web.media``).
    """
    data = checked(request, schemas.check_start_source, data)
    kind = data["kind"]
    spec: dict = {"kind": kind}
    if kind == "mic":
        spec["device"] = data.get("device")
    elif kind == "file":
        spec["path"] = _media_path(data["path"], uploads, media_dirs, request)
    elif kind == "stream":
        spec = _stream_spec(data["url"], uploads, media_dirs, request)
    elif kind == "upload":
        if uploads is None:
            raise RequestError(f"{request}: uploads are not enabled.")
        try:
            item = uploads.get(data["upload_id"])
        except UploadError as exc:
            raise RequestError(f"{request}: {exc}") from None
        spec = {"kind": "file", "path": item["path"], "label": item["name"]}
    if "label" in data:
        spec["label"] = data["label"]
    if "hop" in data:
        spec["hop"] = data["hop"]
    return spec


def _stream_spec(url: str, uploads, media_dirs, request: str) -> dict:
    if url.lower().startswith("file:"):
        # A local file named as a URL: allowed only where a file path would be.
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        try:
            return {"kind": "file", "path": _media_path(path, uploads, media_dirs, request)}
        except RequestError as exc:
            raise RequestError(f"{request}: a stream URL must be http:// or https://; file: URLs work only "
                               f"for files inside the media folders ({str(exc).removeprefix(request + ': ')})") from None
    from server.audio.stream_source import StreamError, validate_url

    try:
        validate_url(url, allow_file=False)
    except StreamError as exc:
        raise RequestError(f"{request}: {exc}.") from None
    return {"kind": "stream", "url": url}


def _media_path(path: str, uploads, media_dirs, request: str) -> str:
    extra = [str(uploads.dir)] if uploads is not None else []
    try:
        return resolve_media_path(path, list(media_dirs), extra)
    except MediaPathError as exc:
        raise RequestError(f"{request}: {exc}") from None


def parse_source_id(data, request: str) -> str:
    """The ``id`` of a stop_source / restart_source payload."""
    return checked(request, schemas.check_event, "stop_source", data)["id"]


def parse_model_request(data, request: str = "select_model") -> str:
    """The model ``name`` of a select_model payload or POST /api/models/select body."""
    return checked(request, schemas.check_event, "select_model", data)["name"]


def parse_rules_request(data, request: str = "set_rules") -> list:
    """The ``rules`` list of a PUT rules body (the engine checks each rule)."""
    return checked(request, schemas.check_event, "put_rules", data)["rules"]


def rules_reply(engine, source_id: str, rules: list) -> dict:
    """A source's rules as the client gets them, with ``missing_genres``: the genres they expect that
    the current model cannot output (kept and shown, never matched; empty while no model is ready)."""
    model = engine.status().get("model") or {}
    missing = missing_genres(rules, model["labels"]) if model.get("ready") else []
    return {"source": source_id, "rules": rules, "missing_genres": missing}


def parse_monitoring_request(data, request: str = "set_monitoring") -> dict:
    """``{"smoothing"?, "segments"?}`` → keyword arguments for ``Engine.set_monitoring``."""
    return checked(request, schemas.check_monitoring, data)


def merge_monitoring(engine, wanted: dict) -> dict:
    """Segment settings are patched (unnamed keys keep their values); smoothing is replaced whole."""
    if "segments" in wanted:
        wanted = {**wanted, "segments": {**(engine.monitoring().get("segments") or {}), **wanted["segments"]}}
    return wanted


def known_source(engine, source_id: str, request: str) -> str:
    if source_id not in engine.source_ids():
        raise RequestError(f"{request}: no running source with id {source_id!r}.")
    return source_id
