"""Limits on Socket.IO sessions: how many per client address, how long without a Socket.IO
connection, how much may wait unsent for one client (docs/security.md, "Sessions").

python-engineio (threading mode) keeps an Engine.IO session open after its Socket.IO
connect is refused, gives every session a thread that only sleeps until its next ping, and
queues outgoing packets without bound. ``SessionLimiter.install`` fixes all three on one
``socketio.Server``:

- a client address may hold ``per_client`` sessions at once (counted from the handshake
  until the session's TCP connection is gone); the next handshake is answered 429 with a
  JSON message;
- a session whose Socket.IO CONNECT was refused (no or wrong token, foreign origin), or
  that sends none within ``connect_timeout`` seconds, is closed by the server: the refusal
  (``CONNECT_ERROR``) is sent first, then the Engine.IO CLOSE, then its TCP connection is
  shut down, so no thread waits on a client that never answers;
- pings for every session come from one timer thread instead of a thread per session;
- a session's queue holds at most ``max_queued_bytes`` of packets: beyond that the oldest
  spectrogram and prediction events for that client are dropped (newer ones replace them);
  when what is left still does not fit, the client is too far behind and is disconnected
  (a browser reconnects and starts fresh).
- no event takes binary data: a binary event or ack (which makes python-socketio wait for
  its attachments, however many it declares, and keep every frame) or a bare binary frame
  closes the session at once, and nothing of it is kept;
- a message is at most ``max_message_bytes``: Engine.IO's limit, also given to the
  WebSocket reader so a larger frame is refused as it arrives rather than once buffered.

Engine.IO offers no public hooks for these, so the limiter replaces its internals (``handlers``,
``create_queue``, ``Socket.schedule_ping``, the queue's ``_put``/``_get``, the wire prefix of an
event, the WebSocket class in ``_async``): requirements.txt pins python-engineio to the tested range, and
tests/test_engineio_internals.py fails, naming what moved, when an upgrade changes any of them.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import logging
import queue
import socket
import threading
import time
import urllib.parse

log = logging.getLogger(__name__)

MAX_SESSIONS_PER_CLIENT = 32           # concurrent Socket.IO sessions one client address may hold
MAX_QUEUED_BYTES = 1 << 20             # unsent packets one session may hold before its live events are dropped
CONNECT_TIMEOUT = 20.0                 # seconds a session may stay without a Socket.IO connection
CLOSE_GRACE = 1.0                      # seconds a closed session's last packets get before its TCP connection is cut
DROPPABLE_EVENTS = ("spectrogram", "prediction")  # the next one replaces a lost one; nothing else is dropped
MAX_MESSAGE_BYTES = 1_000_000         # one message from a client (Engine.IO's default limit, made explicit)
BINARY_PACKETS = ("5", "6")            # Socket.IO BINARY_EVENT, BINARY_ACK: no event of ours takes binary

WEBSOCKET_RECHECK_S = 1.0             # how often a WebSocket reader looks again whether its connection closed

_DROPPABLE_PREFIXES = tuple(f'2["{name}",' for name in DROPPABLE_EVENTS)
# The gate's note in the environ for the Engine.IO handlers (who see a copy of the environ, so it is
# a shared dict): {"reserved": a place is held for this address, "sid": the session it went to}.
_SLOT = "genre.session_slot"


def _packet_bytes(item) -> int:
    data = getattr(item, "data", None)
    return len(data) if isinstance(data, (str, bytes)) else (16 if item is not None else 0)


def _droppable(item) -> bool:
    data = getattr(item, "data", None)
    return isinstance(data, str) and data.startswith(_DROPPABLE_PREFIXES)


class _RecheckingEvent(threading.Event):
    """simple-websocket's reader event, woken every ``WEBSOCKET_RECHECK_S`` when waiting without end.

    simple-websocket sets its event before it marks a closed connection (a refused oversized
    message, a close from the client) as closed; a reader woken in between waits for ever and the
    session is never freed. Waking to look again closes that gap."""

    def wait(self, timeout=None):
        if timeout is None:
            super().wait(WEBSOCKET_RECHECK_S)
            return True
        return super().wait(timeout)


class BoundedPacketQueue(queue.Queue):
    """An Engine.IO socket's outgoing queue with a byte budget (see the module docstring).

    ``Queue.put`` never blocks the sender (the engine's worker emitting to a room): it
    drops live events or, once only undroppable packets are over budget, calls
    ``on_overflow`` (set by the limiter when the session registers) after the put.
    """

    def __init__(self, max_bytes: int):
        super().__init__()
        self.max_bytes = max_bytes
        self.bytes = 0
        self.dropped = 0
        self.overflowed = False
        self.on_overflow = None
        self._overflow_due = False

    def put(self, item, block=True, timeout=None):
        super().put(item, block, timeout)
        if self._overflow_due:
            self._overflow_due = False
            if self.on_overflow is not None:
                self.on_overflow()

    # Called with ``self.mutex`` held; ``put`` counts the item in ``unfinished_tasks`` after this,
    # so every item taken out here (never to be ``task_done``'d) is taken off that count.
    def _put(self, item):
        if self.overflowed and item is not None:  # closing: only the end-of-queue marker still goes in
            self.unfinished_tasks -= 1
            self.dropped += 1
            return
        self.queue.append(item)
        self.bytes += _packet_bytes(item)
        if self.bytes <= self.max_bytes:
            return
        kept, removed = [], 0
        for it in self.queue:  # oldest first
            if self.bytes > self.max_bytes and _droppable(it):
                self.bytes -= _packet_bytes(it)
                removed += 1
            else:
                kept.append(it)
        if removed:
            self.queue.clear()
            self.queue.extend(kept)
            self.dropped += removed
            self.unfinished_tasks -= removed
        if self.bytes > self.max_bytes:
            # Only undroppable packets left and still over budget: free them all, the session goes.
            self.overflowed = self._overflow_due = True
            self.dropped += len(self.queue)
            self.unfinished_tasks -= len(self.queue)
            self.queue.clear()
            self.bytes = 0

    def _get(self):
        item = self.queue.popleft()
        self.bytes -= _packet_bytes(item)
        return item


class _Timers:
    """One daemon thread running callbacks at their time (pings, connect timeouts, TCP cut-offs)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, fn, *args) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="socketio-session-timers", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, fn, args = heapq.heappop(self._heap)
            try:
                fn(*args)
            except Exception:  # one bad callback must not stop the others
                log.exception("session timer %r failed", fn)


def _tcp_socket(environ):
    """The request's TCP connection, as the HTTP server (gunicorn or Werkzeug) hands it over."""
    return environ.get("gunicorn.socket") or environ.get("werkzeug.socket")


def client_address(environ) -> str:
    return environ.get("REMOTE_ADDR") or "?"


class SessionLimiter:
    """The limits of the module docstring for one ``socketio.Server`` (``install`` once)."""

    def __init__(self, per_client: int = MAX_SESSIONS_PER_CLIENT, max_queued_bytes: int = MAX_QUEUED_BYTES,
                 connect_timeout: float = CONNECT_TIMEOUT, close_grace: float = CLOSE_GRACE,
                 max_message_bytes: int = MAX_MESSAGE_BYTES):
        self.per_client = int(per_client)
        self.max_queued_bytes = int(max_queued_bytes)
        self.max_message_bytes = int(max_message_bytes)
        self.connect_timeout = float(connect_timeout)
        self.close_grace = float(close_grace)
        self._lock = threading.Lock()
        self._by_address: dict[str, int] = {}    # sessions, handshakes in progress, lingering connections
        self._sessions: dict[str, dict] = {}     # eio sid -> {address, connected, queue}
        self._tcp: dict[str, socket.socket] = {}  # eio sid -> its WebSocket's TCP connection
        self._lingering: dict[str, str] = {}      # ended session -> address, until its TCP connection ends
        self._timers = _Timers()
        self.refused_handshakes = 0
        self.closed_refused = 0
        self.closed_idle = 0
        self.closed_slow = 0
        self.closed_binary = 0
        self.dropped_gone = 0  # live events dropped for sessions that have ended
        self.server = None
        self.eio = None

    # --- wiring -----------------------------------------------------------------------------------------
    def install(self, sio_server) -> None:
        """Hook into ``sio_server`` (a ``socketio.Server``) and its Engine.IO server."""
        self.server, self.eio = sio_server, sio_server.eio
        eio = self.eio
        on_connect, on_message, on_disconnect = (eio.handlers[n] for n in ("connect", "message", "disconnect"))

        def connect(sid, environ):
            ret = on_connect(sid, environ)
            if ret is not None and ret is not True:
                return ret
            self._register(sid, environ)
            return ret

        def message(sid, data):
            if not isinstance(data, str) or data[:1] in BINARY_PACKETS:
                self._refuse_binary(sid)  # never handed on: nothing waits for attachments or keeps them
                return
            on_message(sid, data)
            if isinstance(data, str) and data[:1] == "0":  # a Socket.IO CONNECT
                self._after_connect(sid, data)

        def disconnect(sid, *args):
            try:
                return on_disconnect(sid, *args)
            finally:
                self._forget(sid)

        eio.on("connect", connect)
        eio.on("message", message)
        eio.on("disconnect", disconnect)
        eio.create_queue = self._create_queue
        eio.max_http_buffer_size = self.max_message_bytes  # polling bodies; WebSocket messages once read
        websocket = (eio._async or {}).get("websocket")
        if websocket is not None:  # the reader stops a larger frame as it arrives (``_async`` is shared: copied)
            eio._async = {**eio._async, "websocket": functools.partial(
                websocket, max_message_size=self.max_message_bytes, event_class=_RecheckingEvent)}

    def wsgi(self, app, path: str = "socket.io"):
        """WSGI middleware in front of ``app`` (the Socket.IO one): the per-address cap on handshakes."""
        prefix = "/" + path.strip("/") + "/"

        def gate(environ, start_response):
            if not environ.get("PATH_INFO", "").startswith(prefix):
                return app(environ, start_response)
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            sid = (query.get("sid") or [None])[0]
            if sid is None:  # a new session: reserve its place or refuse it
                refusal = self._reserve(client_address(environ))
                if refusal is not None:
                    body = json.dumps({"message": refusal}).encode()
                    start_response("429 Too Many Requests", [("Content-Type", "application/json"),
                                                             ("Content-Length", str(len(body)))])
                    return [body]
            elif environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                self._remember_tcp(sid, environ)
            slot = environ[_SLOT] = {"reserved": sid is None, "sid": sid}
            try:
                return app(environ, start_response)
            finally:
                if slot["reserved"]:  # the handshake made no session
                    self._release(client_address(environ))
                if slot["sid"] is not None and _tcp_socket(environ) is not None:
                    self._drop_tcp(slot["sid"], _tcp_socket(environ))  # the connection has ended

        return gate

    def _create_queue(self, *args, **kwargs):
        return BoundedPacketQueue(self.max_queued_bytes)

    # --- bookkeeping ------------------------------------------------------------------------------------
    def _reserve(self, address: str) -> str | None:
        with self._lock:
            n = self._by_address.get(address, 0)
            if self.per_client > 0 and n >= self.per_client:
                self.refused_handshakes += 1
                refusal = (f"too many connections: {address} already has {n} Socket.IO sessions open "
                           f"(at most {self.per_client} per client address); close some and retry")
            else:
                self._by_address[address] = n + 1
                return None
        log.warning("Socket.IO handshake refused: %s", refusal)
        return refusal

    def _release(self, address: str) -> None:
        with self._lock:
            self._uncount(address)

    def _register(self, sid: str, environ) -> None:
        address = client_address(environ)
        with self._lock:
            slot = environ.get(_SLOT) or {}
            if slot.get("reserved"):  # the gate's reservation becomes this session's place
                slot["reserved"] = False
            else:  # no gate in front: count it here
                self._by_address[address] = self._by_address.get(address, 0) + 1
            slot["sid"] = sid
            sock = self.eio.sockets.get(sid)
            q = getattr(sock, "queue", None)
            self._sessions[sid] = {"address": address, "connected": False, "queue": q}
        if isinstance(q, BoundedPacketQueue):
            q.on_overflow = lambda: self._overflowed(sid)
        if urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("transport") == ["websocket"]:
            self._remember_tcp(sid, environ)  # a WebSocket from the start: this request is its connection
        if sock is not None:
            self._take_over_pings(sock)
        self._timers.call_later(self.connect_timeout, self._check_connected, sid)

    def _forget(self, sid: str) -> None:
        """The session has ended. Its place stays taken while its TCP connection lingers."""
        with self._lock:
            info = self._sessions.pop(sid, None)
            if info is None:
                return
            if isinstance(info["queue"], BoundedPacketQueue):
                self.dropped_gone += info["queue"].dropped
            tcp = self._tcp.get(sid)
            if tcp is not None:
                self._lingering[sid] = info["address"]
            else:
                self._uncount(info["address"])
        if tcp is not None:  # a client that never answers the close must not keep its threads
            self._timers.call_later(self.close_grace, self._cut, sid, tcp)

    def _uncount(self, address: str) -> None:
        n = self._by_address.get(address, 0) - 1
        if n > 0:
            self._by_address[address] = n
        else:
            self._by_address.pop(address, None)

    def _remember_tcp(self, sid: str, environ) -> None:
        tcp = _tcp_socket(environ)
        if tcp is not None:
            with self._lock:
                self._tcp[sid] = tcp

    def _drop_tcp(self, sid: str, tcp) -> bool:
        """Forget ``sid``'s TCP connection (if still ``tcp``); True when it was still known."""
        with self._lock:
            if self._tcp.get(sid) is not tcp:
                return False
            del self._tcp[sid]
            address = self._lingering.pop(sid, None)
            if address is not None:
                self._uncount(address)
            return True

    # --- closing ----------------------------------------------------------------------------------------
    def _after_connect(self, sid: str, data: str) -> None:
        """After a CONNECT: a session left with no Socket.IO connection was refused; close it."""
        try:
            namespace = self.server.packet_class(encoded_packet=data).namespace or "/"
        except Exception:
            namespace = "/"
        if self.server.manager.sid_from_eio_sid(sid, namespace) is not None:
            with self._lock:
                if sid in self._sessions:
                    self._sessions[sid]["connected"] = True
            return
        with self._lock:
            if sid not in self._sessions or self._sessions[sid]["connected"]:
                return  # another namespace of this session is connected: leave it be
            self.closed_refused += 1
        sock = self.eio.sockets.get(sid)
        if sock is not None and not sock.upgraded:
            # Long-polling: the refusal waits in the queue for the client's next GET; let it come.
            self._timers.call_later(self.close_grace, self.close, sid, "its Socket.IO connection was refused")
        else:  # a WebSocket's writer sends the refusal before the CLOSE that follows it
            self.close(sid, "its Socket.IO connection was refused")

    def _refuse_binary(self, sid: str) -> None:
        with self._lock:
            info = self._sessions.get(sid)
            if info is None or info.get("binary"):
                return  # closing already: its further frames are dropped as they come
            info["binary"] = True
            self.closed_binary += 1
        log.warning("Socket.IO session %s sent binary data, which no event takes: disconnected", sid)
        self._timers.call_later(0, self.close, sid, "it sent binary data", True)

    def _check_connected(self, sid: str) -> None:
        with self._lock:
            info = self._sessions.get(sid)
            if info is None or info["connected"]:
                return
            self.closed_idle += 1
        self.close(sid, f"no Socket.IO connection within {self.connect_timeout:g} s")

    def _overflowed(self, sid: str) -> None:
        with self._lock:
            if sid not in self._sessions:
                return
            self.closed_slow += 1
        log.warning("Socket.IO client %s reads too slowly (over %d bytes queued after dropping its live "
                    "events): disconnected", sid, self.max_queued_bytes)
        # Not on the emitting thread: it may be the engine's worker, in the middle of a room emit.
        self._timers.call_later(0, self.close, sid, "too far behind", True)

    def close(self, sid: str, why: str, abort: bool = False) -> None:
        """Close one Engine.IO session without waiting on the client; its TCP connection follows."""
        sock = self.eio.sockets.get(sid) if self.eio is not None else None
        if sock is None or sock.closed:
            self._forget(sid)
            return
        log.debug("closing Socket.IO session %s: %s", sid, why)
        try:
            sock.close(wait=False, abort=abort, reason=self.eio.reason.SERVER_DISCONNECT)
        except Exception:
            log.debug("closing %s", sid, exc_info=True)
        self._forget(sid)  # done by the disconnect handler already, unless the socket was closing

    def _cut(self, sid: str, tcp: socket.socket) -> None:
        if not self._drop_tcp(sid, tcp):
            return  # the connection ended by itself
        try:
            tcp.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- pings ------------------------------------------------------------------------------------------
    def _take_over_pings(self, sock) -> None:
        """Replace the socket's ping thread (one per session, asleep) by this limiter's timer."""
        from engineio import packet

        interval = self.eio.ping_interval

        def send_ping():
            if not sock.closing and not sock.closed:
                sock.last_ping = time.time()
                sock.send(packet.Packet(packet.PING))

        def schedule_ping():
            # As engineio's: only when the previous ping was answered (or at the start).
            if sock.last_ping:
                sock.last_ping = None
                self._timers.call_later(interval, send_ping)

        sock.schedule_ping = schedule_ping

    # --- status -----------------------------------------------------------------------------------------
    def status(self) -> dict:
        with self._lock:
            sessions = list(self._sessions.values())
            by_address = dict(self._by_address)
        queued = [s["queue"].bytes for s in sessions if isinstance(s["queue"], BoundedPacketQueue)]
        lengths = [s["queue"].qsize() for s in sessions if s["queue"] is not None]
        return {
            "sessions": len(sessions),
            "connected": sum(1 for s in sessions if s["connected"]),
            "by_address": by_address,
            "max_per_client": self.per_client,
            "max_queued_bytes": self.max_queued_bytes,
            "queued_bytes": sum(queued),
            "largest_queue_bytes": max(queued, default=0),
            "largest_queue_packets": max(lengths, default=0),
            "dropped_events": self.dropped_gone + sum(s["queue"].dropped for s in sessions
                                                      if isinstance(s["queue"], BoundedPacketQueue)),
            "refused_handshakes": self.refused_handshakes,
            "closed_refused": self.closed_refused,
            "closed_idle": self.closed_idle,
            "closed_slow": self.closed_slow,
            "closed_binary": self.closed_binary,
        }
