"""REST API (docs/api.md): one-shot lists and the same actions as the socket events.

Errors are JSON ``{"error": "..."}`` with a 4xx status, never tracebacks.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from server import schemas
from server.web.request_parsing import (RequestError, UnknownSource, checked, known_source, merge_monitoring,
                                        parse_model_request, parse_monitoring_request, parse_rules_request,
                                        parse_source_id, parse_source_request, rules_reply, unsaved_settings)
from server.web.sources_view import sources_payload
from server.web.uploads import UploadError, UploadQuotaError, no_space_is_507

bp = Blueprint("api", __name__, url_prefix="/api")


def _engine():
    return current_app.extensions["genre_engine"]


def _uploads():
    return current_app.extensions["genre_uploads"]


def _error(message: str, status: int = 400):
    return jsonify(error=message), status


def _json_body() -> dict:
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # absurdly nested JSON
        data = None
    if not isinstance(data, dict):
        raise RequestError("Request body must be a JSON object (Content-Type: application/json).")
    return data


@bp.before_request
def _no_query_parameters():
    # None of these routes takes query parameters; refusing strays keeps the contract explicit.
    checked(f"{request.method} {request.path}", schemas.check_query, request.args, "none")


@bp.after_request
def _say_unsaved_settings(response):
    """A change that holds but could not be saved (full disk, read-only folder) says so in its reply."""
    warning = unsaved_settings(_engine())
    if warning and request.method != "GET" and response.is_json and response.status_code < 400:
        body = response.get_json(silent=True)
        if isinstance(body, dict):
            body.update(saved=False, warning=warning)
            response.set_data(current_app.json.dumps(body))
    return response


@bp.errorhandler(RequestError)
@bp.errorhandler(UploadError)
def _bad_request(exc):
    return _error(str(exc), 400)


@bp.errorhandler(UnknownSource)
def _not_found(exc):
    return _error(str(exc), 404)


@bp.errorhandler(UploadQuotaError)
def _insufficient_storage(exc):
    return _error(str(exc), 507)


def _engine_error(exc):
    return _error(str(exc), 400)


@bp.record_once
def _register_engine_error(state):
    # EngineError lives in server.engine; import lazily so the web tier imports without it.
    from server.engine import EngineError

    state.app.register_error_handler(EngineError, _engine_error)


@bp.get("/devices")
def devices():
    return jsonify(devices=_engine().list_devices())


@bp.get("/sources")
def sources():
    return jsonify(sources_payload(_engine(), current_app.extensions.get("genre_store")))


@bp.post("/sources")
def start_source():
    spec = parse_source_request(_json_body(), _uploads(), "POST /api/sources",
                                media_dirs=current_app.extensions["genre_media_dirs"])
    source_id = _engine().start_source(spec)
    return jsonify(ok=True, id=source_id)


@bp.delete("/sources/<source_id>")
def stop_source(source_id):
    parse_source_id(_engine(), {"id": source_id}, f"DELETE /api/sources/{source_id}")
    _engine().stop_source(source_id)
    return jsonify(ok=True, id=source_id)


@bp.post("/sources/<source_id>/restart")
def restart_source(source_id):
    parse_source_id(_engine(), {"id": source_id}, f"POST /api/sources/{source_id}/restart")
    _engine().restart_source(source_id)
    return jsonify(ok=True, id=source_id)


@bp.get("/sources/<source_id>/rules")
def get_rules(source_id):
    known_source(_engine(), source_id, f"GET /api/sources/{source_id}/rules")
    return jsonify(rules_reply(_engine(), source_id, _engine().rules(source_id)))


@bp.put("/sources/<source_id>/rules")
def put_rules(source_id):
    request_name = f"PUT /api/sources/{source_id}/rules"
    known_source(_engine(), source_id, request_name)  # a missing source is a 404 whatever the body
    source_id, rules = parse_rules_request(_engine(), _json_body(), request_name, source_id=source_id)
    rules = _engine().set_rules(source_id, rules)
    return jsonify(ok=True, **rules_reply(_engine(), source_id, rules))


@bp.get("/monitoring")
def get_monitoring():
    return jsonify(_engine().monitoring())


@bp.put("/monitoring")
def put_monitoring():
    wanted = parse_monitoring_request(_json_body(), "PUT /api/monitoring")
    settings = _engine().set_monitoring(**merge_monitoring(_engine(), wanted))
    return jsonify(ok=True, **settings)


@bp.get("/sessions")
def sessions():
    """Socket.IO sessions: how many, per client address, queued bytes, dropped events, closures."""
    return jsonify(current_app.extensions["genre_sessions"].status())


@bp.get("/models")
def models():
    payload = _engine().status().get("model") or {}
    return jsonify(models=_engine().list_models(), current=payload.get("name"),
                   ready=payload.get("ready", False), precision=payload.get("precision"))


@bp.post("/models/select")
def select_model():
    name = parse_model_request(_json_body(), "POST /api/models/select")
    _engine().select_model(name)
    return jsonify(ok=True, name=name)


@bp.post("/upload")
def upload():
    uploads, limit = _uploads(), current_app.config["MAX_CONTENT_LENGTH"]
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()
    # The quota is checked before the body is stored anywhere (the whole body counts, unknown: the limit).
    nbytes = request.content_length or limit
    try:
        uploads.reserve(nbytes)
    except UploadQuotaError:
        _discard_body()  # read, not stored: the client then gets the answer, not a reset connection
        raise
    try:
        with no_space_is_507():  # the body is spooled to a temporary file first
            storage = request.files.get("file")
        if storage is None:
            raise RequestError("Send the audio as multipart/form-data in a field named 'file'.")
        item = uploads.save(storage)
    finally:
        uploads.release(nbytes)
    return jsonify(ok=True, **item)


def _discard_body() -> None:
    try:
        while request.stream.read(1 << 16):
            pass
    except Exception:  # the client went away
        pass
