"""The alert webhook: an engine sink that POSTs each alert as JSON to a URL, from a daemon thread.

``send`` never blocks the caller (the engine worker): payloads go into a
bounded queue and are dropped (and counted) when it is full, e.g. while the
receiver is down. The sending thread survives whatever a receiver does (a bad
status line, too many headers, a broken body, a trickle): each POST has a total
deadline, redirects are followed only to http(s) URLs, and every failure is logged
and counted. The URL's credentials and path (which often hold a secret) never
appear in a log or a status: only ``scheme://host:port/…``.
"""
from __future__ import annotations

import base64
import http.client
import json
import logging
import queue
import socket
import ssl
import threading
import time
import urllib.parse

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0      # one network operation (connect, a read)
DEFAULT_DEADLINE_S = 10.0    # one whole POST, redirects included
DEFAULT_MAX_QUEUE = 100
DEFAULT_BACKOFF_S = 1.0
MAX_REDIRECTS = 5
MAX_REPLY_BYTES = 65536      # of a receiver's reply body: read (so the connection ends cleanly), not kept
REDIRECTS = (301, 302, 303, 307, 308)
_STOP = object()


class WebhookError(ValueError):
    """A webhook setting that cannot be used; the message says why."""


def shown(url: str) -> str:
    """``url`` as logs and statuses show it: ``scheme://host[:port]/…`` (no credentials, no path)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a webhook URL)"
    return f"{parts.scheme}://{host}{port}/…"


def validate_url(url) -> str:
    if not isinstance(url, str) or not url.strip():
        raise WebhookError("webhook URL must be a non-empty string like https://example.com/hook")
    url = url.strip()
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise WebhookError(f"webhook URL {shown(url)} contains a space or a control character; "
                           "percent-encode it (%20)")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise WebhookError(f"webhook URL {shown(url)} is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise WebhookError(f"webhook URL must start with http:// or https://, got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise WebhookError(f"webhook URL has no host name: {shown(url)}")
    return url


class _Failed(Exception):
    """One POST did not deliver; the message says why (credentials and path left out)."""


class WebhookSender:
    """``send(payload) -> bool`` queues a JSON POST; counts ``sent``, ``failed``, ``dropped``.

    A failed POST (network error, bad reply, deadline, non-2xx status) is retried ``retries``
    times, waiting ``backoff`` seconds (doubling) in between. Each POST, redirects included,
    ends within ``deadline`` seconds.
    """

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S, max_queue: int = DEFAULT_MAX_QUEUE,
                 retries: int = 1, backoff: float = DEFAULT_BACKOFF_S, deadline: float = DEFAULT_DEADLINE_S):
        self.url = validate_url(url)
        if not timeout > 0 or not deadline > 0:
            raise WebhookError(f"webhook timeout and deadline must be positive, got {timeout!r}, {deadline!r}")
        if int(max_queue) < 1:
            raise WebhookError(f"webhook max_queue must be at least 1, got {max_queue!r}")
        self.timeout, self.retries, self.backoff = float(timeout), max(0, int(retries)), max(0.0, float(backoff))
        self.deadline = float(deadline)
        self.sent = self.failed = self.dropped = 0
        self.last_error: str | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=int(max_queue))
        self._closed = False
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def send(self, payload: dict) -> bool:
        """Queue one payload; False (and counted in ``dropped``) when full or closed."""
        if not self._closed:
            try:
                self._queue.put_nowait(payload)
                return True
            except queue.Full:
                pass
        with self._lock:
            self.dropped += 1
            first = self.dropped == 1
        if first:
            log.warning("webhook %s: queue full (%d alerts waiting); alerts are dropped and counted",
                        shown(self.url), self._queue.maxsize)
        return False

    def stats(self) -> dict:
        with self._lock:
            return {"url": shown(self.url), "sent": self.sent, "failed": self.failed, "dropped": self.dropped,
                    "queued": self._queue.qsize(), "last_error": self.last_error}

    def close(self, wait: float = 2.0) -> None:
        """Stop accepting payloads, deliver what is queued within ``wait`` seconds, then stop."""
        if self._closed:
            return
        self._closed = True
        try:
            self._queue.put(_STOP, timeout=wait)
        except queue.Full:
            pass
        self._thread.join(wait)
        self._abort.set()  # whatever is left is not worth holding the caller for

    # --- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._abort.is_set():
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is _STOP:
                return
            try:
                self._deliver(item)
            except Exception as exc:  # a bug here must not end the thread: every later alert would be lost
                log.exception("webhook %s: delivering an alert failed", shown(self.url))
                self._count_failure(f"internal error: {type(exc).__name__}")

    def _deliver(self, payload) -> None:
        try:
            body = json.dumps(payload, default=str).encode("utf-8")
        except (TypeError, ValueError) as exc:
            self._count_failure(f"payload is not JSON: {exc}")
            return
        delay = self.backoff
        for attempt in range(self.retries + 1):
            error = self._post(body)
            if error is None:
                with self._lock:
                    self.sent += 1
                return
            if attempt < self.retries and self._abort.wait(delay):
                break
            delay *= 2
        self._count_failure(error)

    def _post(self, body: bytes) -> str | None:
        """One POST (redirects followed to http(s) only) within ``deadline``; None on success, else why."""
        url, ends = self.url, time.monotonic() + self.deadline
        try:
            for _ in range(MAX_REDIRECTS + 1):
                status, reason, location = self._post_once(url, body, ends)
                if status in REDIRECTS and location:
                    url = urllib.parse.urljoin(url, location)
                    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
                        return f"redirected to a {urllib.parse.urlsplit(url).scheme or 'relative'}: URL; " \
                               "only http(s) redirects are followed"
                    continue
                return None if 200 <= status < 300 else f"HTTP {status} {reason}"[:200]
            return f"more than {MAX_REDIRECTS} redirects"
        except _Failed as exc:
            return str(exc)

    def _post_once(self, url: str, body: bytes, ends: float) -> tuple[int, str, str | None]:
        parts = urllib.parse.urlsplit(url)
        left = ends - time.monotonic()
        if left <= 0:
            raise _Failed(f"no answer within {self.deadline:g} s")
        try:
            kind = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
            extra = {"context": ssl.create_default_context()} if kind is http.client.HTTPSConnection else {}
            conn = kind(parts.hostname, parts.port, timeout=min(self.timeout, left), **extra)
        except (ValueError, http.client.HTTPException) as exc:
            raise _Failed(f"bad URL {shown(url)}: {type(exc).__name__}") from None
        # Each read has ``timeout``; the deadline bounds them all (a receiver sending a byte at a
        # time never times a read out): the connection is cut when it passes.
        expired = threading.Event()

        def cut():
            expired.set()
            if conn.sock is not None:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        timer = threading.Timer(left, cut)
        timer.daemon = True
        timer.start()
        headers = {"Content-Type": "application/json", "User-Agent": "genre-monitor-webhook"}
        if parts.username is not None:  # credentials in the URL: HTTP basic auth
            user = urllib.parse.unquote(parts.username) + ":" + urllib.parse.unquote(parts.password or "")
            headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        try:
            conn.connect()
            if expired.is_set():
                raise TimeoutError
            conn.request("POST", target, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read(MAX_REPLY_BYTES)
            return resp.status, str(resp.reason), resp.getheader("Location")
        except Exception as exc:  # every receiver error: timeouts, resets, bad status lines, headers, bodies
            if expired.is_set():
                raise _Failed(f"no complete answer within {self.deadline:g} s") from None
            raise _Failed(f"cannot reach {shown(url)}: {_why(exc)}" if isinstance(exc, OSError)
                          else f"bad answer from {shown(url)}: {_why(exc)}") from None
        finally:
            timer.cancel()
            conn.close()

    def _count_failure(self, error: str) -> None:
        log.warning("webhook %s failed: %s", shown(self.url), error)
        with self._lock:
            self.failed += 1
            self.last_error = error


def _why(exc: Exception) -> str:
    """What went wrong, without echoing what the receiver sent (it may be huge) or the URL."""
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    text = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class AlertWebhook:
    """Engine sink: every alert (firing and resolved) to ``sender``."""

    def __init__(self, sender: WebhookSender):
        self.sender = sender

    def on_alert(self, payload: dict) -> None:
        self.sender.send(payload)

    def report(self) -> dict:
        """What the status shows of this sink: ``{"webhook": sent/failed/dropped counts, ...}``."""
        return {"webhook": self.sender.stats()}

    def close(self) -> None:
        self.sender.close()
