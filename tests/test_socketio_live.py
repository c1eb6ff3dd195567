"""The real server in a subprocess, a real Socket.IO client over WebSocket, the real model."""

import threading

import numpy as np
import pytest
import socketio

from tests.support.web import live_server, music_file

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

WAIT_S = 240  # model load + warm-up on a shared CPU; the test ends as soon as data is in


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = music_file(tmp_path_factory.mktemp("live"))
    with live_server(f"file:{path}") as srv:
        yield srv


class Events:
    def __init__(self, want_predictions: int):
        self.predictions, self.spectrograms, self.sources = [], [], []
        self.want = want_predictions
        self.enough = threading.Event()

    def prediction(self, p):
        self.predictions.append(p)
        if len(self.predictions) >= self.want and any(s["times"] for s in self.spectrograms):
            self.enough.set()

    def spectrogram(self, s):
        self.spectrograms.append(s)


def connect(url, events: Events) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.on("prediction", events.prediction)
    client.on("spectrogram", events.spectrogram)
    client.on("sources", events.sources.append)
    client.connect(url, transports=["websocket"], wait_timeout=30)
    return client


def test_live_predictions_and_spectrogram(server):
    events = Events(want_predictions=5)
    client = connect(server.url, events)
    try:
        assert events.enough.wait(WAIT_S), f"no live data; server log:\n{server.log()}"
    finally:
        client.disconnect()

    assert events.sources, "sources is sent on connect"
    first = events.sources[0]
    assert first["sources"] and first["sources"][0]["kind"] == "file"

    for p in events.predictions[:5]:
        assert len(p["probs"]) == len(p["labels"]) > 1
        assert abs(sum(p["probs"]) - 1.0) <= 1e-4
        assert p["top"] == p["labels"][int(np.argmax(p["probs"]))]
        assert p["confidence"] == pytest.approx(max(p["probs"]), abs=1e-5)
        assert isinstance(p["uncertain"], bool)
        assert len(p["tags"]) <= 8
        assert {"windows", "skipped", "overflows"} <= set(p["counters"])
    times = [p["t"] for p in events.predictions]
    assert times == sorted(times)

    assert any(s["times"] for s in events.spectrograms)
    for s in events.spectrograms:
        assert s["n_mels"] == 96
        assert len(s["columns"]) == len(s["times"])
        assert all(len(col) == 96 for col in s["columns"])
        assert all(s["db_floor"] <= v for col in s["columns"] for v in col)


def test_acks_over_the_wire(server):
    events = Events(want_predictions=1)
    client = connect(server.url, events)
    try:
        bad = client.call("start_source", {"kind": "file", "path": "/no/such/track.flac"}, timeout=30)
        # No --media-dir: the browser may not read server files, and is told how to allow it.
        assert bad["ok"] is False and "--media-dir" in bad["error"]
        junk = client.call("stop_source", "not an object", timeout=30)
        assert junk["ok"] is False and junk["error"]
        source_id = events.sources[-1]["sources"][0]["id"]
        watch = client.call("watch", {"sources": [source_id]}, timeout=30)
        assert watch == {"ok": True, "sources": [source_id]}
    finally:
        client.disconnect()


def test_rules_over_the_wire_and_rest(server):
    import json
    import urllib.error
    import urllib.request

    events = Events(want_predictions=1)
    client = connect(server.url, events)
    try:
        assert events.enough.wait(WAIT_S), f"no live data; server log:\n{server.log()}"
        labels = events.predictions[-1]["labels"]
        source_id = events.predictions[-1]["source"]
        rules = [{"type": "unexpected_genre", "expected": labels[:2], "for": 30}, {"type": "silence", "for": 8}]
        ack = client.call("set_rules", {"source": source_id, "rules": rules}, timeout=30)
        assert ack["ok"] is True, ack
        assert [r["type"] for r in ack["rules"]] == ["unexpected_genre", "silence"]
        assert ack["rules"][1]["threshold_db"] == -50  # defaults filled in
        # A genre the model lacks is kept (and named), not refused: it may be another model's.
        kept = client.call("set_rules", {"source": source_id, "rules": [{"type": "unexpected_genre",
                                                                          "expected": ["polka-core"]}]}, timeout=30)
        assert kept["ok"] is True and kept["missing_genres"] == ["polka-core"], kept
        bad = client.call("set_rules", {"source": source_id, "rules": [{"type": "polka-core"}]}, timeout=30)
        assert bad["ok"] is False and bad["error"]
        assert client.call("set_rules", {"source": source_id, "rules": rules}, timeout=30)["rules"] == ack["rules"]
    finally:
        client.disconnect()

    with urllib.request.urlopen(f"{server.url}/api/sources/{source_id}/rules", timeout=10) as res:
        assert json.load(res)["rules"] == ack["rules"]
    req = urllib.request.Request(f"{server.url}/api/sources/{source_id}/rules", method="PUT",
                                 data=json.dumps({"rules": [{"type": "silence", "for": 0}]}).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400 and "for" in json.load(err.value)["error"]
