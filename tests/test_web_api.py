"""REST API and Socket.IO handlers on a real Engine, through Flask's and Flask-SocketIO's test clients."""

import io
import json
import os
import re

import pytest

from server.audio.source import SourceState
from server.engine import Engine
from server.sinks.payloads import TOP_TAGS
from server.web.app import create_app
from server.web.contract import contract
from tests.support.web import music_file, write_wav


@pytest.fixture(scope="module")
def engine():
    eng = Engine()  # not started: these tests exercise the web tier, not the model
    yield eng
    eng.shutdown()


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    return os.path.dirname(music_file(tmp_path_factory.mktemp("song")))


@pytest.fixture(scope="module")
def web(engine, tmp_path_factory, media_dir):
    upload_dir = tmp_path_factory.mktemp("uploads")
    app, socketio = create_app(engine, upload_dir=str(upload_dir), max_upload_mb=1, media_dirs=[media_dir])
    return app, socketio, upload_dir


@pytest.fixture
def client(web):
    return web[0].test_client()


@pytest.fixture
def song(tmp_path_factory):
    return music_file(tmp_path_factory.mktemp("song"))


def test_page_and_vendored_scripts(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for needle in ('id="probs-plot"', 'id="timeline-plot"', 'id="spec-plot"', "/vendor/plotly.min.js",
                   "socket.io.min.js", "js/main.js"):
        assert needle in html
    plotly = client.get("/vendor/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.data) > 1_000_000
    assert client.get("/static/vendor/socket.io.min.js").status_code == 200
    assert client.get("/static/js/spectrogram.js").status_code == 200


def test_page_embeds_the_contract_the_scripts_read(client):
    html = client.get("/").get_data(as_text=True)
    blob = re.search(r'<script id="contract" type="application/json">(.*?)</script>', html, re.S)
    assert blob, "the page carries no contract"
    embedded = json.loads(blob.group(1))
    assert embedded == json.loads(json.dumps(contract()))
    assert embedded["source_states"]["LOST"] == SourceState.LOST == "lost"
    assert "lost" in embedded["live_states"] and embedded["top_tags"] == TOP_TAGS
    # The picker and the rules dialog start from the same values.
    assert re.search(r'<option value="1" selected>1 s</option>', html)
    assert 'id="rule-silence-for" min="1" step="1" value="10"' in html


def test_lists(client, engine):
    devices = client.get("/api/devices")
    assert devices.status_code == 200
    assert isinstance(devices.json["devices"], list)
    for d in devices.json["devices"]:
        assert {"index", "name", "max_input_channels", "default_samplerate"} <= set(d)
    models = client.get("/api/models")
    assert models.status_code == 200
    assert models.json["models"], "at least one installed model"
    assert all({"name", "labels"} <= set(m) for m in models.json["models"])
    sources = client.get("/api/sources")
    assert sources.status_code == 200
    assert sources.json == {**engine.status(), "history": {"enabled": False}}  # no history store


@pytest.mark.parametrize("body, fragment", [
    ({"kind": "radio"}, "kind"),
    ({"kind": "file"}, "path"),
    ({"kind": "file", "path": "/no/such/file.flac"}, "outside the media folders"),
    ({"kind": "file", "path": "no-such-file.flac"}, "no such file"),
    ({"kind": "file", "path": "x.wav", "hop": "fast"}, "hop"),
    ({"kind": "mic", "device": [1, 2]}, "device"),
    ({"kind": "upload", "upload_id": "nope"}, "upload"),
    ([1, 2, 3], "JSON object"),
])
def test_start_source_validation(client, body, fragment):
    res = client.post("/api/sources", json=body)
    assert res.status_code == 400, res.json
    assert fragment.lower() in res.json["error"].lower()


def test_non_json_body_and_unknown_routes(client):
    res = client.post("/api/sources", data="kind=demo", content_type="application/x-www-form-urlencoded")
    assert res.status_code == 400 and "JSON" in res.json["error"]
    assert client.get("/api/nothing").status_code == 404
    assert "error" in client.get("/api/nothing").json
    res = client.put("/api/devices")
    assert res.status_code == 405 and "error" in res.json


def test_start_and_stop_file_source(client, song):
    res = client.post("/api/sources", json={"kind": "file", "path": song, "hop": 1.0})
    assert res.status_code == 200, res.json
    source_id = res.json["id"]
    listed = {s["id"]: s for s in client.get("/api/sources").json["sources"]}
    assert listed[source_id]["kind"] == "file"
    assert listed[source_id]["label"] == os.path.basename(song)
    assert client.delete(f"/api/sources/{source_id}").status_code == 200
    assert source_id not in {s["id"] for s in client.get("/api/sources").json["sources"]}
    again = client.delete(f"/api/sources/{source_id}")
    assert again.status_code == 404 and source_id in again.json["error"]


def test_select_model_validation(client):
    assert client.post("/api/models/select", json={}).status_code == 400
    res = client.post("/api/models/select", json={"name": "no-such-model"})
    assert res.status_code in (400, 404) and "no-such-model" in res.json["error"]


def test_upload_real_wav_accepted_then_started(client, web, tmp_path):
    wav = write_wav(tmp_path / "my song.wav", seconds=2.0)
    with open(wav, "rb") as f:
        res = client.post("/api/upload", data={"file": (f, "my song.wav")}, content_type="multipart/form-data")
    assert res.status_code == 200, res.json
    body = res.json
    assert body["ok"] is True and body["name"] == "my song.wav"
    assert body["duration"] == pytest.approx(2.0, abs=0.01)
    stored = body["path"]
    assert os.path.isfile(stored) and stored.endswith(".wav")
    assert os.path.dirname(stored) == str(web[2]) and "my song" not in stored  # random name
    started = client.post("/api/sources", json={"kind": "upload", "upload_id": body["upload_id"]})
    assert started.status_code == 200, started.json
    listed = {s["id"]: s for s in client.get("/api/sources").json["sources"]}
    assert listed[started.json["id"]]["label"] == "my song.wav"
    client.delete(f"/api/sources/{started.json['id']}")


def test_upload_text_renamed_mp3_rejected(client, web):
    before = set(os.listdir(web[2]))
    fake = io.BytesIO(b"this is not audio, just text pretending to be an mp3\n" * 50)
    res = client.post("/api/upload", data={"file": (fake, "song.mp3")}, content_type="multipart/form-data")
    assert res.status_code == 400
    assert "song.mp3" in res.json["error"]
    assert set(os.listdir(web[2])) == before, "the rejected file is deleted"


def test_upload_errors(client, tmp_path):
    assert client.post("/api/upload", data={}, content_type="multipart/form-data").status_code == 400
    res = client.post("/api/upload", data={"file": (io.BytesIO(b"x"), "notes.txt")},
                      content_type="multipart/form-data")
    assert res.status_code == 400 and ".txt" in res.json["error"]
    big = io.BytesIO(b"\0" * (2 * 1024 * 1024))  # the app under test allows 1 MB
    res = client.post("/api/upload", data={"file": (big, "big.wav")}, content_type="multipart/form-data")
    assert res.status_code == 413 and "1 MB" in res.json["error"]


def test_socket_handlers(web, song):
    app, socketio, _ = web
    sc = socketio.test_client(app)
    assert sc.is_connected()
    first = sc.get_received()
    assert first[0]["name"] == "sources" and "sources" in first[0]["args"][0]

    for bad in ("junk", {"kind": "tape"}, {"kind": "file", "path": ""}, {"kind": "file", "path": song, "hop": 99}):
        ack = sc.emit("start_source", bad, callback=True)
        assert ack["ok"] is False and ack["error"], bad

    ack = sc.emit("start_source", {"kind": "file", "path": song}, callback=True)
    assert ack["ok"] is True, ack
    source_id = ack["id"]
    events = sc.get_received()
    assert any(e["name"] == "sources" and source_id in [s["id"] for s in e["args"][0]["sources"]] for e in events)

    assert sc.emit("watch", {"sources": [source_id]}, callback=True) == {"ok": True, "sources": [source_id]}
    assert sc.emit("watch", {"sources": ["nope"]}, callback=True)["ok"] is False
    assert sc.emit("watch", {"sources": "all"}, callback=True)["ok"] is True
    assert sc.emit("select_model", {"name": "no-such-model"}, callback=True)["ok"] is False
    assert sc.emit("select_model", None, callback=True)["ok"] is False

    assert sc.emit("stop_source", {"id": source_id}, callback=True) == {"ok": True, "id": source_id}
    again = sc.emit("stop_source", {"id": source_id}, callback=True)
    assert again["ok"] is False and source_id in again["error"]
    assert sc.emit("stop_source", {}, callback=True)["ok"] is False
    sc.disconnect()


@pytest.mark.parametrize("body, fragment", [
    ({"kind": "stream"}, "url"),
    ({"kind": "stream", "url": "ftp://radio.example/live"}, "http"),
    ({"kind": "stream", "url": "file:///etc/passwd"}, "http"),
])
def test_stream_source_validation(client, body, fragment):
    res = client.post("/api/sources", json=body)
    assert res.status_code == 400, res.json
    assert fragment in res.json["error"]


def test_monitoring_get_and_put(client, engine):
    res = client.get("/api/monitoring")
    assert res.status_code == 200
    assert set(res.json) == {"smoothing", "segments"}
    before = res.json["segments"]
    res = client.put("/api/monitoring", json={"segments": {"min_duration": 4}})
    assert res.status_code == 200, res.json
    assert res.json["segments"]["min_duration"] == 4
    # Segment settings are patched: keys not sent keep their values.
    assert {k: v for k, v in res.json["segments"].items() if k != "min_duration"} == \
        {k: v for k, v in before.items() if k != "min_duration"}
    res = client.put("/api/monitoring", json={"smoothing": {"kind": "median", "n": 3}})
    assert res.status_code == 200 and res.json["smoothing"] == {"kind": "median", "n": 3}
    assert client.get("/api/monitoring").json == engine.monitoring()


@pytest.mark.parametrize("body, fragment", [
    ({}, "smoothing"),
    ({"tau": 3}, "unknown field"),
    ({"smoothing": "ema"}, "object"),
    ({"smoothing": {"kind": "wobble"}}, "wobble"),
    ({"segments": {"min_duration": -5}}, "min_duration"),
    ([1], "JSON object"),
])
def test_monitoring_validation(client, body, fragment):
    before = client.get("/api/monitoring").json
    res = client.put("/api/monitoring", json=body)
    assert res.status_code == 400, res.json
    assert fragment.lower() in res.json["error"].lower()
    assert client.get("/api/monitoring").json == before, "a rejected change changes nothing"


def test_rules_endpoints_validation(client, song):
    assert client.get("/api/sources/nope/rules").status_code == 404
    res = client.put("/api/sources/nope/rules", json={"rules": []})
    assert res.status_code == 404 and "nope" in res.json["error"]
    source_id = client.post("/api/sources", json={"kind": "file", "path": song}).json["id"]
    try:
        res = client.get(f"/api/sources/{source_id}/rules")
        assert res.status_code == 200 and res.json == {"source": source_id, "rules": [], "missing_genres": [],
                                                       "unhonoured": []}
        for body, fragment in (({"rules": "silence"}, "list"), ({}, "rules"), ("x", "JSON object")):
            res = client.put(f"/api/sources/{source_id}/rules", json=body)
            assert res.status_code == 400 and fragment in res.json["error"], (body, res.json)
        # This engine never loaded a model, so the rules cannot be checked against its labels yet.
        res = client.put(f"/api/sources/{source_id}/rules", json={"rules": [{"type": "silence", "for": 5}]})
        assert res.status_code == 400 and "model" in res.json["error"]
    finally:
        client.delete(f"/api/sources/{source_id}")


def test_socket_monitoring_and_rules_handlers(web, song):
    app, socketio, _ = web
    sc = socketio.test_client(app)
    ack = sc.emit("set_monitoring", {"segments": {"min_duration": 6}}, callback=True)
    assert ack["ok"] is True and ack["monitoring"]["segments"]["min_duration"] == 6
    for bad in (None, {"segments": 3}, {"smoothing": {"kind": "ema", "tau": -1}}, {"colour": "red"}):
        ack = sc.emit("set_monitoring", bad, callback=True)
        assert ack["ok"] is False and ack["error"], bad
    assert sc.emit("set_rules", {"source": "nope", "rules": []}, callback=True)["ok"] is False
    source_id = sc.emit("start_source", {"kind": "file", "path": song}, callback=True)["id"]
    try:
        ack = sc.emit("set_rules", {"source": source_id, "rules": {"type": "silence"}}, callback=True)
        assert ack["ok"] is False and "list" in ack["error"]
        assert sc.emit("set_rules", {"rules": []}, callback=True)["ok"] is False
    finally:
        sc.emit("stop_source", {"id": source_id}, callback=True)
        sc.disconnect()


def test_restart_a_source_over_rest_and_socket(client, web, song):
    started = client.post("/api/sources", json={"kind": "file", "path": song})
    source_id = started.json["id"]
    try:
        again = client.post(f"/api/sources/{source_id}/restart")
        assert again.status_code == 200 and again.json["id"] == source_id
        listed = [s for s in client.get("/api/sources").json["sources"] if s["id"] == source_id]
        assert len(listed) == 1 and listed[0]["state"] in ("starting", "running")
        sio = web[1].test_client(web[0], flask_test_client=client)
        ack = sio.emit("restart_source", {"id": source_id}, callback=True)
        assert ack == {"ok": True, "id": source_id}
        bad = sio.emit("restart_source", {"id": "nope"}, callback=True)
        assert bad["ok"] is False and "nope" in bad["error"]
        sio.disconnect()
    finally:
        client.delete(f"/api/sources/{source_id}")
    assert client.post(f"/api/sources/{source_id}/restart").status_code == 404


# A JSON integer no float can hold: float() raises OverflowError on it. (Socket.IO needs no such test:
# engineio refuses integers of over 100 digits while decoding the packet.)
HUGE = int("9" * 400)


@pytest.mark.parametrize("method, url, body, field", [
    ("post", "/api/sources", {"kind": "demo", "hop": HUGE}, "'hop'"),
    ("post", "/api/sources", {"kind": "demo", "hop": -HUGE}, "'hop'"),
    ("post", "/api/sources", {"kind": "mic", "device": HUGE}, "'device'"),
    ("post", "/api/sources", {"kind": "mic", "device": "9" * 5000}, "'device'"),
    ("put", "/api/monitoring", {"smoothing": {"kind": "ema", "tau": HUGE}}, "'smoothing'.tau"),
    ("put", "/api/monitoring", {"segments": {"min_duration": HUGE}}, "'segments'.min_duration"),
    ("put", "/api/sources/SRC/rules", {"rules": [{"type": "silence", "for": HUGE}]}, "'rules'[0].for"),
    ("put", "/api/sources/SRC/rules", {"rules": [{"type": "silence", "threshold_db": -HUGE}]}, "threshold_db"),
])
def test_huge_integers_are_refused_by_field_name(client, song, method, url, body, field):
    source_id = client.post("/api/sources", json={"kind": "file", "path": song}).json["id"]
    try:
        res = getattr(client, method)(url.replace("SRC", source_id), json=body)
        assert res.status_code == 400, res.json
        assert field in res.json["error"] and "internal" not in res.json["error"], res.json
    finally:
        client.delete(f"/api/sources/{source_id}")



def test_long_upload_names_and_labels_are_cut_for_display(client, tmp_path):
    wav = write_wav(tmp_path / "long.wav", seconds=2.0)
    name = "a very long name " * 60 + ".wav"
    with open(wav, "rb") as f:
        res = client.post("/api/upload", data={"file": (f, name)}, content_type="multipart/form-data")
    assert res.status_code == 200, res.json
    assert len(res.json["name"]) == 200 and res.json["name"].endswith("….wav")
    started = client.post("/api/sources", json={"kind": "upload", "upload_id": res.json["upload_id"]}).json["id"]
    try:
        listed = {s["id"]: s for s in client.get("/api/sources").json["sources"]}
        assert listed[started]["label"] == res.json["name"]
    finally:
        client.delete(f"/api/sources/{started}")
    res = client.post("/api/sources", json={"kind": "demo", "label": "x" * 201})
    assert res.status_code == 400 and "'label'" in res.json["error"]


def test_a_demo_source_takes_its_label(client):
    started = client.post("/api/sources", json={"kind": "demo", "label": "Lobby radio"})
    assert started.status_code == 200, started.json
    try:
        listed = {s["id"]: s for s in client.get("/api/sources").json["sources"]}
        assert listed[started.json["id"]]["label"] == "Lobby radio"
    finally:
        client.delete(f"/api/sources/{started.json['id']}")
