"""A client request as the engine takes it: one parser per action, shared by REST and Socket.IO.

``server.web.api`` and ``server.web.socket_events`` call the same function for the same
action, naming the request (``"POST /api/sources"``, ``"start_source"``) so an error
reads ``"<request>: <what is wrong>."`` whichever way it came. Shapes are checked by
``server.schemas``; what needs the server's state (the media folders, an upload, a
running source) is checked here.
"""

from __future__ import annotations

from server import schemas, source_specs
from server.monitor.alerts import missing_genres, unhonoured
from server.schemas import SchemaError
from server.source_specs import SourceSpecError
from server.web.media import MediaPathError, resolve_media_path
from server.web.uploads import UploadError


class RequestError(Exception):
    """A client request was malformed; the message goes back to the client (ack or JSON error)."""


def checked(request: str, fn, *args):
    """``fn(*args)`` from ``server.schemas`` with its ``SchemaError`` as a ``RequestError`` naming ``request``."""
    try:
        return fn(*args)
    except SchemaError as exc:
        raise RequestError(f"{request}: {_sentence(str(exc))}") from None


def parse_source_request(data, uploads=None, request: str = "start_source", media_dirs=()) -> dict:
    """A start_source payload (Socket.IO) or POST /api/sources body → the engine's source spec.

    The kind's entry (``server.source_kinds``) makes the spec: uploads become file specs inside
    the upload folder; file paths (and ``file:`` URLs) must lie inside ``media_dirs`` (real
    paths, see ``server.web.media``).
    """
    data = checked(request, source_specs.check_request, data)
    try:
        return source_specs.spec_from_request(data, _ServerFiles(uploads, media_dirs))
    except SourceSpecError as exc:
        raise RequestError(f"{request}: {_sentence(str(exc))}") from None


class _ServerFiles:
    """What a source request may name on this server: media files and uploads."""

    def __init__(self, uploads, media_dirs):
        self.uploads, self.media_dirs = uploads, list(media_dirs)

    def media_path(self, path: str) -> str:
        extra = [str(self.uploads.dir)] if self.uploads is not None else []
        try:
            return resolve_media_path(path, self.media_dirs, extra)
        except MediaPathError as exc:
            raise SourceSpecError(str(exc)) from None

    def upload(self, upload_id: str) -> dict:
        if self.uploads is None:
            raise SourceSpecError("uploads are not enabled.")
        try:
            return self.uploads.get(upload_id)
        except UploadError as exc:
            raise SourceSpecError(str(exc)) from None


def _sentence(text: str) -> str:
    return text if text.endswith(".") else text + "."


class UnknownSource(RequestError):
    """The request names no running source (REST answers 404)."""


def known_source(engine, source_id: str, request: str) -> str:
    if source_id not in engine.source_ids():
        raise UnknownSource(f"{request}: no running source with id {source_id!r}.")
    return source_id


def parse_source_id(engine, data, request: str) -> str:
    """The ``id`` of a stop_source / restart_source request (REST: ``{"id": <from the path>}``): a running source."""
    return known_source(engine, checked(request, schemas.check_event, "stop_source", data)["id"], request)


def parse_model_request(data, request: str = "select_model") -> str:
    """The model ``name`` of a select_model payload or POST /api/models/select body."""
    return checked(request, schemas.check_event, "select_model", data)["name"]


def parse_rules_request(engine, data, request: str = "set_rules", source_id: str | None = None) -> tuple[str, list]:
    """(a running source's id, its ``rules`` list) of a set_rules payload, or of a PUT rules body
    with ``source_id`` from the path; the engine checks each rule."""
    if source_id is None:
        data = checked(request, schemas.check_event, "set_rules", data)
        return known_source(engine, data["source"], request), data["rules"]
    known_source(engine, source_id, request)
    return source_id, checked(request, schemas.check_event, "put_rules", data)["rules"]


def rules_reply(engine, source_id: str, rules: list) -> dict:
    """A source's rules as the client gets them, with ``missing_genres``: the genres they expect that
    the current model cannot output (kept and shown, never matched; empty while no model is ready),
    and ``unhonoured``: which rules that touches, and how (``monitor.alerts.unhonoured``)."""
    model = engine.status().get("model") or {}
    labels = model["labels"] if model.get("ready") else None
    return {"source": source_id, "rules": rules, "missing_genres": missing_genres(rules, labels) if labels else [],
            "unhonoured": unhonoured(rules, labels) if labels else []}


def parse_monitoring_request(data, request: str = "set_monitoring") -> dict:
    """``{"smoothing"?, "segments"?}`` → keyword arguments for ``Engine.set_monitoring``."""
    return checked(request, schemas.check_monitoring, data)


def merge_monitoring(engine, wanted: dict) -> dict:
    """Segment settings are patched (unnamed keys keep their values); smoothing is replaced whole."""
    if "segments" in wanted:
        wanted = {**wanted, "segments": {**(engine.monitoring().get("segments") or {}), **wanted["segments"]}}
    return wanted



def unsaved_settings(engine) -> str | None:
    """Why the engine's last settings change is not saved (it holds in memory), or None."""
    error = getattr(getattr(engine, "settings", None), "save_error", None)
    return f"{error}; the change holds until the server stops (saving is retried)" if error else None
