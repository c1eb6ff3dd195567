"""Long streamed responses (history lists, exports) bounded against clients that stop reading.

A client that stops reading would hold its request thread in a blocking send for as long as
its connection lives (TCP keeps a zero window open forever), and enough of them would take
every thread the dashboards need. So each response may spend ``SEND_STALL_S`` on one chunk and
``SEND_TOTAL_S`` in all, after which its connection is cut (the client sees a broken transfer,
never a clean end); and at most ``MAX_STREAMS`` such responses are in flight,
``STREAMS_PER_CLIENT`` from one address: more are refused with 503 until one ends.

The deadline is the socket's timeout while gunicorn sends a chunk (``gunicorn.socket``; the
server's ``handle_request`` ends such a connection quietly); a chunk is made before its send,
so whatever lock made it is free while the client is slow.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable, Iterator

log = logging.getLogger(__name__)

SEND_STALL_S = 30.0     # the longest a client may take to accept one chunk
SEND_TOTAL_S = 1800.0   # the longest one response may take in all (a 1-GB export at 0.6 MB/s)
MAX_STREAMS = 64        # streamed responses in flight at once (of the server's 1,000 request threads)
STREAMS_PER_CLIENT = 32  # of them from one client address (many users may share one: NAT, a proxy)


class StreamSlots:
    """Who may start a streamed response now: at most ``MAX_STREAMS``, ``STREAMS_PER_CLIENT`` per address."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_client: dict[str, int] = {}
        self._n = 0

    def take(self, client: str) -> bool:
        with self._lock:
            mine = self._by_client.get(client, 0)
            if self._n >= MAX_STREAMS or mine >= STREAMS_PER_CLIENT:
                return False
            self._n += 1
            self._by_client[client] = mine + 1
            return True

    def give_back(self, client: str) -> bool:
        """Free ``client``'s slot; True when no streamed response is left in flight."""
        with self._lock:
            self._n -= 1
            left = self._by_client[client] - 1
            if left:
                self._by_client[client] = left
            else:
                del self._by_client[client]
            return self._n == 0


class Bounded:
    """``chunks`` as a WSGI response body sent under the deadlines of the module docstring on
    ``sock`` (None: no socket to bound, as under a test client). ``on_done()`` runs once, when its
    last chunk is sent or the server closes the response, whichever comes first."""

    def __init__(self, chunks: Iterator[str], sock: socket.socket | None, on_done: Callable[[], None]):
        self._chunks, self._sock, self._on_done = chunks, sock, on_done
        self._deadline = time.monotonic() + SEND_TOTAL_S
        self._closed = self._finished = False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        left = self._deadline - time.monotonic()
        if left <= 0:
            log.warning("a client took over %g s for one streamed response; its connection was cut", SEND_TOTAL_S)
            self._cut()
            self._done()
            raise StopIteration
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._done()  # every chunk sent: only the response's end is left to send
            raise
        if self._sock is not None:
            try:
                self._sock.settimeout(min(SEND_STALL_S, left))  # sendall's timeout bounds the whole chunk
            except OSError:  # the connection is gone already: its send says so
                pass
        return chunk

    def _cut(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _done(self) -> None:
        if not self._finished:
            self._finished = True
            self._on_done()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            if self._sock is not None:
                try:
                    self._sock.settimeout(None)  # blocking again, as the server keeps its connections
                except OSError:
                    pass
            self._done()
