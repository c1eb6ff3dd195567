"""Flask + Socket.IO application: wiring the engine to the dashboard.

``create_app`` builds the app around an ``Engine``; ``serve`` runs it on the production HTTP
server (``server.web.http_server``: gunicorn's threaded worker, in this process). The
engine pushes events through ``sinks.socketio_sink.SocketIOSink``; the page, REST API and
Socket.IO handlers answer at once even while the model is still loading.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask, jsonify, render_template, request, send_file
from flask_socketio import SocketIO
from werkzeug.exceptions import HTTPException

from server import heap
from server.sinks.socketio_sink import SocketIOSink
from server.web import api, history_api, http_server, library_api, socket_events
from server.web.auth import Guard, configured_token, resolve_token
from server.web.contract import contract
from server.web.media import normalise_dirs
from server.web.proxies import TrustedProxies
from server.web.sessions import MAX_SESSIONS_PER_CLIENT, SessionLimiter
from server.web.sources_view import with_history
from server.web.uploads import UPLOAD_QUOTA_MB, UPLOAD_RETENTION_DAYS, UploadStore

ROOT = Path(__file__).resolve().parents[2]


def plotly_js_path() -> Path:
    """plotly.min.js shipped inside the installed ``plotly`` package (no CDN, no copy)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _setting(engine, key: str, default):
    settings = getattr(engine, "settings", None)
    try:
        value = settings[key] if settings is not None else None
    except (KeyError, TypeError):
        value = None
    return default if value is None else value


def _source_paths(engine) -> list[str]:
    """The files the engine's sources (running, or saved to start again) read."""
    paths = []
    for spec in _setting(engine, "sources", []):
        if isinstance(spec, dict):
            paths += [spec.get("path")] + list(spec.get("paths") or [])
    return [p for p in paths if isinstance(p, str)]


def create_app(engine, *, upload_dir, max_upload_mb: float = 200, store=None, token: str | None = None,
               require_token: bool = False, media_dirs=None, allowed_origins=None, message_queue=None,
               limits: dict | None = None, upload_quota_mb: float | None = None,
               upload_retention_days: float | None = None, trusted_proxies=(), library_db=None):
    """Build ``(app, socketio)`` around ``engine`` and register its Socket.IO sink.

    ``store`` (a ``server.sinks.history`` store or reader, or None) answers the history API and gives the
    ``sources`` event its ``history`` status; wiring it to the engine as a sink is the caller's job.
    ``token`` (or a generated one when ``require_token``) guards the page, REST and Socket.IO;
    ``app.extensions["genre_guard"].token`` holds it. ``media_dirs``: folders whose files browser/API clients may play (none: no
    server paths at all). ``allowed_origins``: extra browser origins (a reverse proxy's
    public address) allowed besides the app's own. See docs/security.md.
    ``message_queue`` (``redis://…``): deliver emits from any process sharing it (docs/scaling.md).
    ``limits`` overrides the Socket.IO session limits (``per_client``, ``max_queued_bytes``,
    ``connect_timeout``: ``server.web.sessions``; ``ping_interval``), else the engine's
    settings (``max_sessions_per_client``) or the defaults apply. ``upload_quota_mb`` and
    ``upload_retention_days`` likewise (settings of the same names, else ``server.web.uploads``'):
    uploads no source uses, older than the retention, are removed here, at start.
    ``trusted_proxies`` (addresses or networks, ``server.web.proxies``): reverse proxies whose
    ``X-Forwarded-For``/``Forwarded`` name the client; none by default.
    """
    limits = dict(limits or {})
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        static_url_path="/static",
    )
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    app.config["MAX_UPLOAD_MB"] = max_upload_mb
    app.config["JSON_SORT_KEYS"] = False
    guard = Guard(resolve_token("127.0.0.1", token, require_token), allowed_origins)
    guard.install(app)
    dirs = normalise_dirs(media_dirs)
    app.extensions["genre_engine"] = engine
    uploads = UploadStore(upload_dir, quota_mb=upload_quota_mb if upload_quota_mb is not None else
                          _setting(engine, "upload_quota_mb", UPLOAD_QUOTA_MB))
    app.extensions["genre_uploads"] = uploads
    if getattr(engine, "settings", None) is not None:  # else (a cluster's web tier) who uses what is unknown
        days = upload_retention_days if upload_retention_days is not None else \
            _setting(engine, "upload_retention_days", UPLOAD_RETENTION_DAYS)
        uploads.prune(_source_paths(engine), days)
    app.extensions["genre_store"] = store
    app.extensions["genre_media_dirs"] = dirs

    # Browsers may connect from the app's own origin only (or the listed ones); never '*'.
    options = {"message_queue": message_queue} if message_queue else {}
    if "ping_interval" in limits:
        options["ping_interval"] = limits.pop("ping_interval")
    socketio = SocketIO(app, async_mode="threading", cors_allowed_origins=guard.cors_origin, **options)
    # Sessions per client address, refused sessions closed, a byte budget per client's queue.
    if "per_client" not in limits:
        limits["per_client"] = _setting(engine, "max_sessions_per_client", MAX_SESSIONS_PER_CLIENT)
    sessions = SessionLimiter(**limits)
    sessions.install(socketio.server)
    # Outermost: the session cap and the logs see the client, not a trusted proxy in front.
    app.wsgi_app = TrustedProxies(trusted_proxies).wsgi(sessions.wsgi(app.wsgi_app))
    app.extensions["genre_sessions"] = sessions
    watchers = socket_events.Watchers()
    socket_events.register(socketio, engine, watchers, app.extensions["genre_uploads"], media_dirs=dirs,
                           guard=guard, store=store)
    app.register_blueprint(api.bp)
    app.register_blueprint(history_api.bp)
    if library_db is not None:  # the library page and API (server/web/library_api.py)
        from server.library.jobs import LibraryJobs

        app.extensions["genre_library"] = LibraryJobs(library_db)
    app.register_blueprint(library_api.bp)
    engine.add_sink(SocketIOSink(socketio, watchers, view=lambda status: with_history(status, store)))

    @app.get("/")
    def index():
        return render_template("index.html", max_upload_mb=max_upload_mb, media_dirs=dirs, contract=contract())

    @app.get("/library")
    def library_page():
        return render_template("library.html", media_dirs=dirs)

    @app.get("/vendor/plotly.min.js")
    def plotly_js():
        return send_file(plotly_js_path(), mimetype="text/javascript", max_age=3600)

    @app.get("/healthz")
    def healthz():
        return jsonify(ok=True)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # API clients get JSON; the browser gets Werkzeug's plain page elsewhere.
        if request.path.startswith("/api/"):
            message = exc.description or exc.name
            if exc.code == 404:
                message = f"Not found: {request.method} {request.path}"
            elif exc.code == 405:
                message = f"Method {request.method} not allowed on {request.path}"
            elif exc.code == 413:
                message = f"Upload too large: the limit is {max_upload_mb:g} MB."
            return jsonify(error=message), exc.code
        return exc

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        message = socket_events.internal_error(f"{request.method} {request.path}")
        if request.path.startswith("/api/"):
            return jsonify(error=message), 500
        return f"Internal server error ({message})", 500

    return app, socketio


def _close_sessions(app, socketio) -> None:
    """At a stop: drop every Socket.IO session, so no open WebSocket holds the server. Their
    transports are cut, not closed by the server, so browsers reconnect once it is back."""
    sessions = app.extensions["genre_sessions"]
    for sid in list(socketio.server.eio.sockets):
        sessions.close(sid, "the server is stopping", abort=True)


def serve(engine, host: str = "127.0.0.1", port: int = 5000, upload_dir: str | os.PathLike = "uploads",
          *, max_upload_mb: float = 200, debug: bool = False, store=None, token: str | None = None,
          require_token: bool = False, media_dirs=None, allowed_origins=None, message_queue=None,
          limits: dict | None = None, upload_quota_mb: float | None = None,
          upload_retention_days: float | None = None, trusted_proxies=(), library_db=None,
          threads: int = http_server.THREADS) -> None:
    """Run the dashboard until a stop signal; the engine loads its model in the background meanwhile.

    Listening on a non-loopback address always requires a token: ``token``, else
    ``$GENRE_MONITOR_TOKEN``, else a generated one, printed with the link to open.
    Raises ``http_server.ServerError`` (before the engine starts) when it cannot listen.
    SIGTERM, SIGINT, SIGHUP and SIGQUIT all return from here in order, the engine stopped.
    """
    heap.limit_arenas()  # before the engine's and the requests' threads: each would keep free memory of its own
    token = resolve_token(host, configured_token(token), require_token)
    app, socketio = create_app(engine, upload_dir=upload_dir, max_upload_mb=max_upload_mb, store=store,
                               token=token, media_dirs=media_dirs, allowed_origins=allowed_origins,
                               message_queue=message_queue, limits=limits, upload_quota_mb=upload_quota_mb,
                               upload_retention_days=upload_retention_days, trusted_proxies=trusted_proxies,
                               library_db=library_db)
    listener = http_server.listen(host, port)
    if token is not None:
        shown = "<this-machine's-address>" if host in ("0.0.0.0", "::", "") else host
        shown = f"[{shown}]" if ":" in shown else shown
        print(f"Access token required. Open http://{shown}:{port}/?token={token}", flush=True)
    engine.start(socketio.start_background_task)
    try:
        http_server.run(app, listener, on_stop=lambda: _close_sessions(app, socketio), threads=threads,
                        trusted_proxies=[str(n) for n in TrustedProxies(trusted_proxies).networks], debug=debug)
    finally:
        logging.getLogger(__name__).info("stopping the engine")
        engine.shutdown()
