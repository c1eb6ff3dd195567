"""The alert webhook: an engine sink that POSTs each alert as JSON to a URL, from a daemon thread.

``send`` never blocks the caller (the engine worker): payloads go into a
bounded queue and are dropped (and counted) when it is full, e.g. while the
receiver is down.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_QUEUE = 100
DEFAULT_BACKOFF_S = 1.0
_STOP = object()


class WebhookError(ValueError):
    """A webhook setting that cannot be used; the message says why."""


def validate_url(url) -> str:
    if not isinstance(url, str) or not url.strip():
        raise WebhookError("webhook URL must be a non-empty string like https://example.com/hook")
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise WebhookError(f"webhook URL must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise WebhookError(f"webhook URL has no host name: {url!r}")
    return url


class WebhookSender:
    """``send(payload) -> bool`` queues a JSON POST; counts ``sent``, ``failed``, ``dropped``.

    A failed POST (network error, timeout, non-2xx status) is retried ``retries`` times,
    waiting ``backoff`` seconds (doubling) in between.
    """

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S, max_queue: int = DEFAULT_MAX_QUEUE,
                 retries: int = 1, backoff: float = DEFAULT_BACKOFF_S):
        self.url = validate_url(url)
        if not timeout > 0:
            raise WebhookError(f"webhook timeout must be positive, got {timeout!r}")
        if int(max_queue) < 1:
            raise WebhookError(f"webhook max_queue must be at least 1, got {max_queue!r}")
        self.timeout, self.retries, self.backoff = float(timeout), max(0, int(retries)), max(0.0, float(backoff))
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
        return False

    def stats(self) -> dict:
        with self._lock:
            return {"url": self.url, "sent": self.sent, "failed": self.failed, "dropped": self.dropped,
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
            self._deliver(item)

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
        """One POST; None on success, else the reason."""
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "genre-monitor-webhook"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read(65536)
                return None  # urlopen raises HTTPError for 4xx/5xx
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            return f"cannot reach {self.url}: {exc.reason}"
        except (OSError, ValueError) as exc:  # timeouts, resets, bad responses
            return f"cannot reach {self.url}: {exc}"

    def _count_failure(self, error: str) -> None:
        log.warning("webhook %s failed: %s", self.url, error)
        with self._lock:
            self.failed += 1
            self.last_error = error


class AlertWebhook:
    """Engine sink: every alert (firing and resolved) to ``sender``."""

    def __init__(self, sender: WebhookSender):
        self.sender = sender

    def on_alert(self, payload: dict) -> None:
        self.sender.send(payload)

    def close(self) -> None:
        self.sender.close()
