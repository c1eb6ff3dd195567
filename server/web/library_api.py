"""REST API of the music library (docs/api.md, "Library"): the results the ``library`` command keeps,
a run on a folder with its progress, and the tracks to play. Folders and files must lie inside the
media folders (``--media-dir``), as for file sources; errors are JSON ``{"error": "..."}``."""

from __future__ import annotations

import os

from flask import Blueprint, current_app, jsonify, request, send_file

from server.library.jobs import JobBusy, LibraryJobs
from server.library.report import report_rows
from server.library.store import LibraryStore
from server.web.media import NO_MEDIA_DIRS, MediaPathError, inside, resolve_media_path

bp = Blueprint("library_api", __name__, url_prefix="/api/library")


class LibraryRequestError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@bp.errorhandler(LibraryRequestError)
def _request_error(exc: LibraryRequestError):
    return jsonify(error=str(exc)), exc.status


@bp.errorhandler(MediaPathError)
def _media_error(exc: MediaPathError):
    return jsonify(error=str(exc)), 403


def _jobs() -> LibraryJobs:
    jobs = current_app.extensions.get("genre_library")
    if jobs is None:
        raise LibraryRequestError("this server keeps no library (no data directory)", 503)
    return jobs


def _media_dirs() -> list[str]:
    return current_app.extensions.get("genre_media_dirs") or []


def _folder(raw) -> str:
    """The real path of a folder inside the media folders."""
    dirs = _media_dirs()
    if not dirs:
        raise MediaPathError(NO_MEDIA_DIRS)
    if not isinstance(raw, str) or not raw.strip() or "\0" in raw:
        raise LibraryRequestError("'folder' must be a folder path (absolute, or relative to the first media folder)")
    real = os.path.realpath(raw if os.path.isabs(raw) else os.path.join(dirs[0], raw))
    if not any(inside(real, d) for d in dirs):
        raise MediaPathError(f"{raw!r} is outside the media folders ({', '.join(dirs)})")
    if not os.path.isdir(real):
        raise LibraryRequestError(f"no such folder: {raw}", 404)
    return real


def _visible(rows: list[dict]) -> list[dict]:
    dirs = _media_dirs()
    return [r for r in rows if any(inside(os.path.realpath(r["path"]), d) for d in dirs)]


@bp.get("")
def tracks():
    """Every analysed track inside the media folders: the last run's, else what the store remembers."""
    jobs = _jobs()
    rows = jobs.last_results
    if rows is None:
        from server.model.registry import load_model

        store = LibraryStore(jobs.db_path)
        try:
            rows = report_rows(store.known(load_model(jobs.model_name).name, under=_media_dirs()))
        finally:
            store.close()
    return jsonify(tracks=_visible(rows), media_dirs=_media_dirs(), job=jobs.status())


@bp.post("/scan")
def scan():
    """Start a run on ``{"folder": "...", "full": false}``: 202 with the job, 409 while one is going."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise LibraryRequestError("Request body must be a JSON object (Content-Type: application/json).")
    unknown = set(body) - {"folder", "full"}
    if unknown:
        raise LibraryRequestError(f"unknown field(s): {', '.join(sorted(unknown))}")
    full = body.get("full", False)
    if not isinstance(full, bool):
        raise LibraryRequestError("'full' must be true or false")
    folder = _folder(body.get("folder"))
    try:
        return jsonify(job=_jobs().start([folder], full)), 202
    except JobBusy as exc:
        raise LibraryRequestError(str(exc), 409) from None


@bp.get("/job")
def job():
    """The current or last run: state, done/total, rate and ETA, and its summary once done."""
    return jsonify(job=_jobs().status())


@bp.get("/audio")
def audio():
    """The file at ``?path=`` (inside the media folders), for the page's player."""
    path = resolve_media_path(request.args.get("path", ""), _media_dirs())
    return send_file(path, conditional=True)
