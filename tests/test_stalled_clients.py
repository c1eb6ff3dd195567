"""Clients that stop reading long history lists and exports: a real server process, raw sockets
with a tiny receive buffer that never read. They hold no encoding turn, other users' lists and
the live path are answered meanwhile, their connections are cut after the send deadline, and
no more than a few of them are in flight from one address."""

import http.client
import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from server.web import streaming
from tests.support.web import app_server
from tests.support.store import fill_radio_history

T0 = 1_700_000_000.0
N = 60000  # ~20 MB of JSON: far more than the socket buffers take, so a stalled send really waits
QUERY = f"source=radio&from={T0}&to={T0 + N}"


def _stall(url: str, path: str) -> socket.socket:
    """A client that asks for ``path`` and never reads past the status line."""
    port = int(url.rsplit(":", 1)[1])
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    client.settimeout(30)
    assert client.recv(64).startswith(b"HTTP/1.1 200")
    return client


def _get(url: str, timeout: float = 120.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _read_to_end(client: socket.socket, timeout: float) -> bytes:
    client.settimeout(timeout)
    data = b""
    while chunk := client.recv(1 << 16):
        data += chunk
    return data


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    path = tmp_path_factory.mktemp("stalled") / "history.sqlite"
    fill_radio_history(path, N, T0)
    return path


@pytest.mark.slow
def test_stalled_clients_block_no_other_users_history(history):
    with app_server(store=str(history)) as srv:
        stalled = [_stall(srv.url, f"/api/history?{QUERY}&limit=100000") for _ in range(3)]
        stalled.append(_stall(srv.url, f"/api/export/windows.csv?{QUERY}"))
        try:
            time.sleep(2.0)  # every one is blocked in its send now
            # More stalled than encoding turns (HEAVY_AT_ONCE = 2): another user's lists still come whole.
            rows = json.loads(_get(f"{srv.url}/api/history?{QUERY}&limit=100000"))
            assert len(rows) == N and rows[-1]["wall"] == T0 + (N - 1) * 0.5
            assert len(json.loads(_get(f"{srv.url}/api/segments?{QUERY}"))) == N // 100
            assert json.loads(_get(f"{srv.url}/api/summary?{QUERY}"))["windows"] == N
            assert json.loads(_get(f"{srv.url}/api/history/status", timeout=10))["enabled"] is True
            # A kept-alive connection serves a list after a list: the send deadline is gone after each.
            conn = http.client.HTTPConnection("127.0.0.1", int(srv.url.rsplit(":", 1)[1]), timeout=30)
            for limit in (7, 9):
                conn.request("GET", f"/api/history?{QUERY}&limit={limit}")
                assert len(json.loads(conn.getresponse().read())) == limit
            conn.close()
        finally:
            for client in stalled:
                client.close()


@pytest.mark.slow
def test_a_stalled_client_is_cut_and_few_stall_at_once(history):
    with app_server(store=str(history), streaming={"SEND_STALL_S": 2.0, "STREAMS_PER_CLIENT": 2}) as srv:
        stalled = [_stall(srv.url, f"/api/history?{QUERY}&limit=100000"),
                   _stall(srv.url, f"/api/export/windows.json?{QUERY}")]
        try:
            # A third from the same address is refused while both are in flight, with a reason.
            with pytest.raises(urllib.error.HTTPError) as refused:
                _get(f"{srv.url}/api/alerts?{QUERY}")
            assert refused.value.code == 503 and refused.value.headers["Retry-After"]
            assert "at once" in json.loads(refused.value.read())["error"]
            time.sleep(4.0)  # past the send deadline without reading a byte
            # The server cut the connection: what was sent ends without the response's last chunk.
            body = _read_to_end(stalled[0], timeout=30)
            assert body and not body.endswith(b"\r\n0\r\n\r\n")
        finally:
            for client in stalled:
                client.close()
        deadline = time.monotonic() + 30
        while True:  # both slots come back once the server has closed them
            try:
                assert len(json.loads(_get(f"{srv.url}/api/alerts?{QUERY}"))) == 0
                break
            except urllib.error.HTTPError as exc:
                assert exc.code == 503 and time.monotonic() < deadline
                time.sleep(0.5)
        assert "Traceback" not in srv.log() and "stopped reading" in srv.log()


def test_slots_per_client_and_in_all():
    slots = streaming.StreamSlots()
    per, total = streaming.STREAMS_PER_CLIENT, streaming.MAX_STREAMS
    assert all(slots.take("a") for _ in range(per)) and not slots.take("a")
    others = [f"c{i}" for i in range(total - per)]
    assert all(slots.take(c) for c in others) and not slots.take("b")
    assert not slots.give_back("a") and slots.take("b")
    for c in others + ["b"] + ["a"] * (per - 2):
        assert not slots.give_back(c)
    assert slots.give_back("a")  # the last one
