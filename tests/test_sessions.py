"""Socket.IO session limits against a real server process (``server.web.sessions``).

Refused sessions (no token) are closed by the server at once and leave no thread behind,
a client address holds at most ``MAX_SESSIONS_PER_CLIENT`` sessions, a session that never
connects is closed, and a client that does not read gets a bounded queue: its oldest live
events are dropped, and once undroppable ones overflow it is disconnected.
The server's threads come from /proc/<pid>/status; its queues from ``GET /api/sessions``.
"""

import json
import socket
import time
import urllib.request
from pathlib import Path

import pytest
import socketio
import websocket
from engineio import packet as eio_packet

from server.web.sessions import MAX_SESSIONS_PER_CLIENT, BoundedPacketQueue
from tests.support.wait import poll, wait_until
from tests.support.web import app_server, music_file

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

ATTACK = 300


def proc_status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def api(srv, path: str):
    req = urllib.request.Request(srv.url + path, headers={"Authorization": f"Bearer {srv.token}"})
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())


def ws_url(srv) -> str:
    return srv.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"


def ws_session(srv, token=None, **kwargs):
    """A raw WebSocket speaking Engine.IO 4: opened, CONNECT sent; (socket, the server's reply or None)."""
    ws = websocket.create_connection(ws_url(srv), timeout=10, **kwargs)
    assert ws.recv().startswith("0{")
    ws.send("40" + (json.dumps({"token": token}) if token else ""))
    return ws


def reply(ws) -> str:
    for _ in range(5):  # a connect may be followed by a sources event before anything else
        msg = ws.recv()
        if msg.startswith(("40", "44")):
            return msg
    return msg


def test_refused_sessions_are_closed_and_the_cap_per_address_holds():
    with app_server(require_token=True, limits={"connect_timeout": 2.0}) as srv:
        pid = srv.proc.pid
        base = proc_status(pid, "Threads")
        # Unauthenticated clients that never close their end: the server closes each at once.
        # Each one's place stays taken until its connection is cut (CLOSE_GRACE later), so a
        # client opening them faster than the cap allows is answered 429 meanwhile.
        held, peak, too_many = [], 0, 0
        for i in range(ATTACK):
            try:
                ws = ws_session(srv)
            except websocket.WebSocketBadStatusException as exc:
                assert exc.status_code == 429, exc
                too_many += 1
                continue
            assert reply(ws).startswith('44{"message":"unauthorized')
            held.append(ws)
            if i % 25 == 24:
                peak = max(peak, proc_status(pid, "Threads"))
        after = poll(lambda: (n := proc_status(pid, "Threads")) <= base + 4 and n, 10, 0.2) or \
            proc_status(pid, "Threads")
        status = api(srv, "/api/sessions")
        print(f"threads: {base} before, peak {peak} during {ATTACK} unauthenticated connections "
              f"({len(held)} refused and closed, {too_many} answered 429), {after} after")
        assert after <= base + 4, (base, peak, after)
        assert peak <= base + 4 * MAX_SESSIONS_PER_CLIENT + 8, (base, peak)
        assert status["sessions"] == 0 and status["closed_refused"] == len(held) >= MAX_SESSIONS_PER_CLIENT, status
        assert status["by_address"] == {}, status
        # Their TCP connections were shut down by the server: each client reads the end.
        closed = 0
        for ws in held:
            try:
                while ws.recv():
                    pass
                closed += 1
            except (websocket.WebSocketConnectionClosedException, OSError):
                closed += 1
            ws.close()
        assert closed == len(held)

        # The long-polling transport: the refusal is delivered, then the session is gone.
        client, refusals = socketio.Client(reconnection=False), []
        client.on("connect_error", refusals.append)
        try:
            client.connect(srv.url, transports=["polling"], wait_timeout=10)
            raise AssertionError("connected without a token")
        except socketio.exceptions.ConnectionError:
            assert "token is required" in str(refusals), refusals
        wait_until(lambda: api(srv, "/api/sessions")["sessions"] == 0, 5, 0.2)

        # Authenticated sessions: MAX_SESSIONS_PER_CLIENT from one address, the next refused with 429.
        good = [ws_session(srv, srv.token) for _ in range(MAX_SESSIONS_PER_CLIENT)]
        assert all(reply(ws).startswith("40{") for ws in good)
        try:
            ws_session(srv, srv.token)
            raise AssertionError("a session beyond the cap was accepted")
        except websocket.WebSocketBadStatusException as exc:
            assert exc.status_code == 429
            message = json.loads(exc.resp_body)["message"]
            assert f"at most {MAX_SESSIONS_PER_CLIENT} per client address" in message, message
        client = socketio.Client(reconnection=False)
        try:
            client.connect(srv.url, auth={"token": srv.token}, wait_timeout=10)
            raise AssertionError("a polling session beyond the cap was accepted")
        except socketio.exceptions.ConnectionError as exc:
            assert "429" in str(exc), exc
        status = api(srv, "/api/sessions")
        assert status["by_address"] == {"127.0.0.1": MAX_SESSIONS_PER_CLIENT}, status
        assert status["refused_handshakes"] == too_many + 2, status
        # One closed: a place is free again, and the new session works.
        good.pop().close()
        wait_until(lambda: api(srv, "/api/sessions")["sessions"] == MAX_SESSIONS_PER_CLIENT - 1, 5, 0.2)
        client = socketio.Client(reconnection=False)
        client.connect(srv.url, auth={"token": srv.token}, transports=["websocket"], wait_timeout=10)
        assert client.call("watch", {"sources": "all"}, timeout=10) == {"ok": True, "sources": []}
        client.disconnect()
        for ws in good:
            ws.close()

        # A handshake that never sends a Socket.IO CONNECT is closed after connect_timeout.
        idle = websocket.create_connection(ws_url(srv), timeout=10)
        assert idle.recv().startswith("0{")
        t0 = time.monotonic()
        got = []
        try:
            while (msg := idle.recv()):
                got.append(msg)
        except (websocket.WebSocketConnectionClosedException, OSError):
            pass
        assert "1" in got and 1.5 < time.monotonic() - t0 < 6, got  # Engine.IO CLOSE, then the end
        wait_until(lambda: api(srv, "/api/sessions")["sessions"] == 0, 5, 0.2)
        assert api(srv, "/api/sessions")["closed_idle"] == 1
        wait_until(lambda: proc_status(pid, "Threads") <= base + 4, 10, 0.2,
                   lambda: (base, proc_status(pid, "Threads")))


def test_pings_keep_a_session_alive_without_a_thread_each():
    with app_server(require_token=True, limits={"ping_interval": 1}) as srv:
        ws = ws_session(srv, srv.token)
        assert reply(ws).startswith("40{")
        pings, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < 4.5:
            if ws.recv() == "2":
                pings += 1
                ws.send("3")
        assert pings >= 3, pings
        ws.close()
        wait_until(lambda: api(srv, "/api/sessions")["sessions"] == 0, 5, 0.2)


def test_a_client_that_does_not_read_gets_a_bounded_queue(tmp_path):
    limit = 128 * 1024
    song = music_file(tmp_path)
    sources = [{"kind": "file", "path": song, "loop": True, "hop": 0.25, "id": f"live-{i}"} for i in range(4)]
    with app_server(require_token=True, worker=True, sources=sources, media_dirs=[str(Path(song).parent)],
                    limits={"max_queued_bytes": limit}) as srv:
        pid = srv.proc.pid
        reader = socketio.Client(reconnection=False)
        spectrograms = []
        reader.on("spectrogram", spectrograms.append)
        reader.connect(srv.url, auth={"token": srv.token}, transports=["websocket"], wait_timeout=10)
        wait_until(lambda: len(spectrograms) > 40, 30, 0.2, "no live events")
        rss0 = proc_status(pid, "VmRSS")  # warm: every source running, the reader served
        # Slow clients: a tiny receive buffer, never a read; blind Engine.IO pongs keep them alive.
        slow = [ws_session(srv, srv.token, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]) for _ in range(3)]
        samples = []

        def full():
            for ws in slow:
                ws.send("3")
            s = api(srv, "/api/sessions")
            samples.append((s["largest_queue_bytes"], s["dropped_events"], proc_status(pid, "VmRSS")))
            return s["dropped_events"] > 200 and s

        status = wait_until(full, 60, 2.0, lambda: samples)
        print(f"queue: largest {max(b for b, _, _ in samples) // 1024} KiB (limit {limit // 1024}), "
              f"{status['dropped_events']} live events dropped, RSS {rss0 // 1024} -> "
              f"{max(r for _, _, r in samples) // 1024} MiB")
        assert all(b <= limit for b, _, _ in samples), samples
        assert status["sessions"] == 4 and status["closed_slow"] == 0, status  # nobody dropped for live events
        assert max(r for _, _, r in samples) - rss0 < 40 * 1024, samples
        n = len(spectrograms)
        wait_until(lambda: len(spectrograms) > n + 8, 10, 0.2, "the reading client stopped receiving")

        # Undroppable events (each start and stop sends everyone the sources list) overflow the
        # slow clients' budget: they are disconnected; the reading client carries on.
        i = 0
        while api(srv, "/api/sessions")["closed_slow"] < 3 and i < 400:
            data = json.dumps({"kind": "file", "path": song, "label": "churn " + "x" * 150}).encode()
            req = urllib.request.Request(srv.url + "/api/sources", data=data, method="POST",
                                         headers={"Authorization": f"Bearer {srv.token}",
                                                  "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as res:
                sid = json.loads(res.read())["id"]
            req = urllib.request.Request(srv.url + f"/api/sources/{sid}", method="DELETE",
                                         headers={"Authorization": f"Bearer {srv.token}"})
            urllib.request.urlopen(req, timeout=10).close()
            i += 1
        status = wait_until(lambda: (s := api(srv, "/api/sessions"))["sessions"] == 1 and s, 10, 0.2,
                            lambda: api(srv, "/api/sessions"))
        assert status["closed_slow"] == 3, status
        assert reader.connected
        n = len(spectrograms)
        wait_until(lambda: len(spectrograms) > n + 4, 10, 0.2)
        reader.disconnect()
        for ws in slow:
            ws.close()


def _msg(event: str, size: int):
    return eio_packet.Packet(eio_packet.MESSAGE, data=f'2["{event}",' + json.dumps("x" * size) + "]")


def test_bounded_queue_drops_oldest_live_events_then_gives_up():
    q = BoundedPacketQueue(10_000)
    calls = []
    q.on_overflow = lambda: calls.append(1)
    q.put(_msg("sources", 1000))
    for i in range(30):
        q.put(_msg("spectrogram" if i % 2 else "prediction", 1000))
    assert q.bytes <= 10_000 and q.dropped == 31 - q.qsize() and not calls
    kept = [q.get() for _ in range(q.qsize())]
    assert kept[0].data.startswith('2["sources"')  # undroppable ones stay, the newest live ones with them
    for _ in kept:
        q.task_done()
    q.put(_msg("spectrogram", 1000))
    for _ in range(9):
        q.put(_msg("notice", 1000))
    assert not calls and q.bytes <= 10_000 and q.qsize() == 9  # the live event made room
    q.put(_msg("notice", 1000))
    assert calls == [1] and q.qsize() == 0 and q.bytes == 0 and q.overflowed
    q.put(_msg("notice", 10))
    q.put(None)  # the end marker still goes through, for the writer to stop
    assert q.qsize() == 1 and q.get() is None
    q.task_done()
    q.join()  # every put item is accounted for: close(wait=True) would not hang


def test_the_cap_comes_from_settings_json(tmp_path):
    from server.engine import Engine
    from server.settings import Settings
    from server.web.app import create_app

    (tmp_path / "settings.json").write_text(json.dumps({"max_sessions_per_client": 5}))
    engine = Engine(settings=Settings(tmp_path / "settings.json"))
    try:
        app, _ = create_app(engine, upload_dir=str(tmp_path / "up"))
        assert app.extensions["genre_sessions"].per_client == 5
        assert app.test_client().get("/api/sessions").get_json()["max_per_client"] == 5
        app, _ = create_app(Engine(), upload_dir=str(tmp_path / "up"))
        assert app.extensions["genre_sessions"].per_client == MAX_SESSIONS_PER_CLIENT
    finally:
        engine.shutdown()
    (tmp_path / "settings.json").write_text(json.dumps({"max_sessions_per_client": -1}))
    assert "max_sessions_per_client" in Settings(tmp_path / "settings.json").problems[0]


BINARY_FLOOD = '459999999999-["watch",{"_placeholder":true,"num":0}]'  # 9,999,999,999 attachments declared


def test_binary_data_closes_the_session_and_keeps_nothing():
    with app_server(require_token=True) as srv:
        pid = srv.proc.pid
        ws = ws_session(srv, srv.token)
        assert reply(ws).startswith("40{")
        rss0 = proc_status(pid, "VmRSS")
        ws.send(BINARY_FLOOD)
        sent = 0
        frame = b"\0" * 900_000  # under the message limit: only the binary refusal stops it
        try:
            for _ in range(300):  # 270 MB the server would keep, waiting for the rest
                ws.send_binary(frame)
                sent += 1
        except (OSError, websocket.WebSocketException):
            pass  # the server closed the session
        status = wait_until(lambda: (s := api(srv, "/api/sessions"))["closed_binary"] == 1 and s, 10, 0.2,
                            lambda: api(srv, "/api/sessions"))
        wait_until(lambda: api(srv, "/api/sessions")["sessions"] == 0, 10, 0.2, lambda: api(srv, "/api/sessions"))
        grown = (proc_status(pid, "VmRSS") - rss0) // 1024
        print(f"binary flood: {sent} frames of 900 kB sent before the close; RSS +{grown} MiB")
        assert grown < 60, (grown, status)
        assert "sent binary data" in srv.log()
        # An ordinary client is served as before.
        ws = ws_session(srv, srv.token)
        assert reply(ws).startswith("40{")
        ws.close()


def test_a_message_over_the_limit_is_refused_as_it_arrives():
    with app_server(require_token=True) as srv:
        pid = srv.proc.pid
        ws = ws_session(srv, srv.token)
        assert reply(ws).startswith("40{")
        rss0 = proc_status(pid, "VmRSS")
        with pytest.raises((OSError, websocket.WebSocketException)):
            ws.send('42["watch",' + json.dumps("x" * 200_000_000) + "]")  # one 200-MB text frame
            for _ in range(5):
                ws.recv()
        wait_until(lambda: api(srv, "/api/sessions")["sessions"] == 0, 10, 0.2, lambda: api(srv, "/api/sessions"))
        assert (proc_status(pid, "VmRSS") - rss0) // 1024 < 60
