"""Access control for the page, the REST API and Socket.IO (docs/security.md).

- A token, when set, is required everywhere but ``/healthz``: ``?token=`` on the page
  (once; it becomes an HttpOnly SameSite=Strict cookie), the cookie or
  ``Authorization: Bearer`` for REST, the cookie or ``auth={"token": …}`` for Socket.IO.
- Browsers may talk to the app only from its own origin (same host:port) or an origin
  listed in ``allowed_origins``: Socket.IO refuses other origins, REST refuses
  state-changing requests from them.
- Without a token (loopback only) the Host header must name a loopback host, so a web
  page cannot reach the dashboard through DNS rebinding.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import urllib.parse

from flask import g, jsonify, request

log = logging.getLogger(__name__)

COOKIE = "genre_monitor_token"
TOKEN_ENV = "GENRE_MONITOR_TOKEN"
MIN_TOKEN_LENGTH = 16
PUBLIC_PATHS = ("/healthz",)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class AuthConfigError(ValueError):
    """The token configuration is unusable (e.g. too short)."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for wildcard and other addresses."""
    host = (host or "").strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None = None, require_token: bool = False) -> str | None:
    """The token to enforce: the one given, a new one when required (non-loopback host), else None."""
    if token is not None:
        token = str(token).strip()
        if len(token) < MIN_TOKEN_LENGTH:
            raise AuthConfigError(f"the access token must be at least {MIN_TOKEN_LENGTH} characters "
                                  "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe())')")
        return token
    if require_token or not is_loopback(host):
        return secrets.token_urlsafe(24)
    return None


def _hostname(netloc: str) -> str:
    return urllib.parse.urlsplit(f"//{netloc}").hostname or ""


class Guard:
    """The access policy of one app; ``install`` hooks it into Flask."""

    def __init__(self, token: str | None = None, allowed_origins=(), check_host: bool | None = None):
        self.token = token
        self.allowed_origins = {o.rstrip("/").lower() for o in allowed_origins or ()}
        self.allowed_hosts = {_hostname(urllib.parse.urlsplit(o).netloc) for o in self.allowed_origins}
        # DNS-rebinding guard: needed when nothing else (a token) keeps foreign pages out.
        self.check_host = token is None if check_host is None else check_host

    # --- checks -----------------------------------------------------------------------------------------
    def token_ok(self, candidate) -> bool:
        if self.token is None:
            return True
        if not isinstance(candidate, str) or not candidate:
            return False
        return hmac.compare_digest(candidate.encode("utf-8", "replace"), self.token.encode("utf-8"))

    def host_ok(self, host_header: str | None) -> bool:
        if not self.check_host:
            return True
        name = _hostname(host_header or "")
        return is_loopback(name) or name in self.allowed_hosts

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        """Same host:port as the request, or explicitly allowed; no Origin (not a browser) passes."""
        if not origin:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self.allowed_origins:
            return True
        parts = urllib.parse.urlsplit(origin)
        if parts.scheme not in ("http", "https") or not host_header:
            return False
        netloc = parts.netloc
        default = {"http": ":80", "https": ":443"}[parts.scheme]
        host = host_header.lower()
        return netloc in (host, host.removesuffix(default)) or f"{netloc}{default}" == host

    def cors_origin(self, origin, environ) -> bool:
        """``cors_allowed_origins`` callable for python-engineio."""
        host = environ.get("HTTP_HOST")
        return self.host_ok(host) and self.origin_ok(origin, host)

    def request_token(self) -> str | None:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            return header[7:].strip()
        return request.cookies.get(COOKIE)

    def socket_ok(self, auth) -> str | None:
        """None when a Socket.IO connection may proceed, else why not."""
        if not self.host_ok(request.headers.get("Host")):
            return "host not allowed"
        if not self.origin_ok(request.headers.get("Origin"), request.headers.get("Host")):
            return "origin not allowed"
        supplied = auth.get("token") if isinstance(auth, dict) else None
        if self.token_ok(supplied if supplied else request.cookies.get(COOKIE)):
            return None
        return "unauthorized: an access token is required" if not supplied else "unauthorized: wrong access token"

    # --- Flask hooks ------------------------------------------------------------------------------------
    def before_request(self):
        if not self.host_ok(request.headers.get("Host")):
            return self._deny(403, "Host not allowed: open the dashboard as http://127.0.0.1:<port>/ or "
                                   "http://localhost:<port>/.")
        if request.method not in SAFE_METHODS and not self.origin_ok(request.headers.get("Origin"),
                                                                     request.headers.get("Host")):
            return self._deny(403, "Cross-origin request refused.")
        if self.token is None or request.path in PUBLIC_PATHS:
            return None
        if self.token_ok(self.request_token()):
            return None
        query = request.args.get("token")
        if request.path == "/" and request.method == "GET" and query:
            if self.token_ok(query):
                g.genre_set_token_cookie = True
                return None
            return self._deny(401, "Wrong access token.")
        return self._deny(401, "Access token required: open the link printed when the server started "
                               "(.../?token=...), or send 'Authorization: Bearer <token>'.")

    def after_request(self, response):
        if g.pop("genre_set_token_cookie", False):
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", secure=request.is_secure,
                                path="/")
            # The token is in the URL; keep it out of the Referer of anything the page loads.
            response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @staticmethod
    def _deny(status: int, message: str):
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            return jsonify(error=message), status
        return (f"<!doctype html><title>Genre Monitor</title><p>{message}</p>", status,
                {"Content-Type": "text/html; charset=utf-8"})

    def install(self, app) -> None:
        app.before_request(self.before_request)
        app.after_request(self.after_request)
        app.extensions["genre_guard"] = self


def configured_token(explicit: str | None = None, saved: str | None = None) -> str | None:
    """The token the user asked for, the one place of its precedence: ``--token``, else
    ``$GENRE_MONITOR_TOKEN``, else the settings' ``token``; None when none is set (see ``resolve_token``)."""
    return explicit or os.environ.get(TOKEN_ENV) or saved or None
