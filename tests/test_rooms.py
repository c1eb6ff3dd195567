"""Socket.IO rooms on the real server: each client gets only the sources it watches."""

import threading
import time

import pytest
import socketio

from tests.support.wait import wait_until
from tests.support.web import live_server, music_files

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

WAIT_S = 240  # model load on a shared CPU; the wait ends as soon as data flows
LISTEN_S = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    a, b = music_files(tmp_path_factory.mktemp("rooms"), 2)
    with live_server(f"file:{a}", f"file:{b}") as srv:
        yield srv


class Recorder:
    """Every per-source event one client receives, by kind."""

    def __init__(self):
        self.events: list[tuple[str, str]] = []
        self.sources: list[dict] = []
        self.lock = threading.Lock()

    def add(self, kind, payload):
        with self.lock:
            self.events.append((kind, payload["source"]))

    def count(self, kind, source=None):
        with self.lock:
            return sum(1 for k, s in self.events if k == kind and (source is None or s == source))


def connect(url) -> tuple[socketio.Client, Recorder]:
    rec = Recorder()
    client = socketio.Client(reconnection=False)
    client.on("prediction", lambda p: rec.add("prediction", p))
    client.on("spectrogram", lambda s: rec.add("spectrogram", s))
    client.on("segment", lambda s: rec.add("segment", s))
    client.on("sources", rec.sources.append)
    client.connect(url, transports=["websocket"], wait_timeout=30)
    return client, rec


def test_each_client_receives_only_its_watched_source(server):
    c1, r1 = connect(server.url)
    c2, r2 = connect(server.url)
    try:
        wait_until(lambda: r1.sources and len(r1.sources[-1]["sources"]) == 2, 30, 0.2, server.log)
        ids = [s["id"] for s in r1.sources[-1]["sources"]]
        assert len(set(ids)) == 2
        # Before any watch, a client receives every source; wait until both are classified.
        wait_until(lambda: all(r1.count("prediction", s) for s in ids), WAIT_S, 0.2, server.log)
        assert c1.call("watch", {"sources": [ids[0]]}, timeout=30) == {"ok": True, "sources": [ids[0]]}
        assert c2.call("watch", {"sources": [ids[1]]}, timeout=30) == {"ok": True, "sources": [ids[1]]}
        for r in (r1, r2):
            with r.lock:
                r.events.clear()
        time.sleep(LISTEN_S)
        for r, want in ((r1, ids[0]), (r2, ids[1])):
            with r.lock:
                got = list(r.events)
            assert {s for _, s in got} == {want}, f"client watching {want} got {sorted({s for _, s in got})}"
            assert r.count("prediction", want) >= 3
            assert r.count("spectrogram", want) >= 3
    finally:
        c1.disconnect()
        c2.disconnect()
