"""The python-engineio internals that ``server.web.sessions`` overrides are still there.

Engine.IO has no public hooks for a byte budget per session, one ping timer for all
sessions or closing a refused session, so ``SessionLimiter`` replaces internals:
``Server.handlers`` and ``Server.create_queue``, ``Socket.schedule_ping``,
``queue.Queue._put``/``_get`` of the socket's queue, and the Socket.IO wire prefix of an
event. requirements.txt pins python-engineio, python-socketio and flask-socketio to the
tested range; these tests drive a real ``socketio.Server`` through WSGI so that an upgrade
that moves any of them fails here, naming what moved, instead of in production.
"""

import importlib.metadata
import inspect
import io
import json
import threading

import engineio
import pytest
import socketio

from server.web.sessions import BoundedPacketQueue, SessionLimiter
from tests.support.wait import wait_until

UPGRADE = ("python-engineio {v} changed an internal that server/web/sessions.py overrides ({what}); "
           "adapt SessionLimiter to it, then widen the pin in requirements.txt")


def moved(what: str) -> str:
    return UPGRADE.format(v=importlib.metadata.version("python-engineio"), what=what)


def call(app, method: str, query: str, body: bytes = b"") -> str:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/socket.io/", "QUERY_STRING": query,
               "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
               "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), "wsgi.url_scheme": "http"}
    status = []
    out = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status and status[0].startswith("200"), (status, out)
    return out.decode()


@pytest.fixture
def served():
    """``(socketio.Server, limiter, WSGI app, eio sid)`` after a polling handshake and a Socket.IO CONNECT."""
    sio = socketio.Server(async_mode="threading")
    limiter = SessionLimiter(max_queued_bytes=4000, connect_timeout=60)
    limiter.install(sio)
    app = limiter.wsgi(socketio.WSGIApp(sio))
    opened = call(app, "GET", "EIO=4&transport=polling")
    assert opened.startswith("0{"), moved(f"the OPEN packet of a handshake: {opened[:40]!r}")
    sid = json.loads(opened[1:])["sid"]
    call(app, "POST", f"EIO=4&transport=polling&sid={sid}", b"40")
    yield sio, limiter, app, sid
    limiter.close(sid, "test over")


def test_the_limiter_sees_each_session_through_the_engines_handlers(served):
    sio, limiter, _, sid = served
    assert limiter.status()["sessions"] == 1, moved("Server.handlers: the wrapped connect handler never ran")
    assert limiter.status()["connected"] == 1, moved("the Socket.IO CONNECT packet ('0…') or manager.sid_from_eio_sid")
    sock = sio.eio.sockets.get(sid)
    assert sock is not None, moved("Server.sockets")
    assert isinstance(sock.queue, BoundedPacketQueue), moved("Server.create_queue: a socket's queue comes from elsewhere")


def test_pings_come_from_the_limiters_timer(served):
    sio, _, _, sid = served
    assert "s.schedule_ping()" in inspect.getsource(engineio.Server._handle_connect), moved("Socket.schedule_ping")
    sock = sio.eio.sockets[sid]
    assert "schedule_ping" in vars(sock) and sock.last_ping is None, moved("Socket.schedule_ping / Socket.last_ping")
    assert not [t.name for t in threading.enumerate() if "_send_ping" in t.name], \
        moved("Socket.schedule_ping: a ping thread per session is back")
    assert {"closing", "closed", "upgraded"} <= set(vars(sock)), moved("the Socket's closing/closed/upgraded flags")
    assert list(inspect.signature(sock.close).parameters) == ["wait", "abort", "reason"], moved("Socket.close")
    assert sio.eio.reason.SERVER_DISCONNECT, moved("Server.reason")


def test_live_events_are_told_apart_on_the_wire_and_dropped_first(served):
    sio, limiter, _, sid = served
    for _ in range(20):
        sio.emit("prediction", "x" * 500)
    status = limiter.status()
    assert status["dropped_events"] > 0 and status["queued_bytes"] <= 4000, \
        moved("the wire prefix of an event ('2[\"name\",') or Queue._put")
    assert status["closed_slow"] == 0
    for _ in range(10):
        sio.emit("notice", "x" * 500)
    assert limiter.status()["closed_slow"] == 1, moved("Queue._put: undroppable packets over budget")
    wait_until(lambda: sid not in sio.eio.sockets or sio.eio.sockets[sid].closed, 5,
               message=lambda: moved("Socket.close(wait=False, abort=True)"))


def test_binary_packets_never_reach_socketio_and_websocket_frames_are_capped(served):
    sio, limiter, app, sid = served
    call(app, "POST", f"EIO=4&transport=polling&sid={sid}", b'451-["watch",{"_placeholder":true,"num":0}]')
    assert sio._binary_packet == {}, moved("the Engine.IO message handler: a binary event reached python-socketio")
    assert limiter.status()["closed_binary"] == 1
    wait_until(lambda: sid not in sio.eio.sockets or sio.eio.sockets[sid].closed, 5,
               message=lambda: moved("Socket.close(wait=False, abort=True)"))
    ws = sio.eio._async["websocket"]
    assert ws.keywords["max_message_size"] == limiter.max_message_bytes, moved("Server._async['websocket']")
    assert "max_message_size" in inspect.signature(__import__("simple_websocket").Server).parameters, \
        moved("simple_websocket.Server(max_message_size=)")
    assert "**kwargs" in str(inspect.signature(ws.func)), moved("SimpleWebSocketWSGI(handler, server, **kwargs)")
