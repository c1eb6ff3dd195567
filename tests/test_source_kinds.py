"""Every layer reads the one registry of source kinds, and REST and Socket.IO share each action's checks.

A kind registered in ``server.source_kinds`` is accepted by the request parser both transports
use, by the command line (when it has a syntax there), by a cluster's check and offered by the
page; a kind not registered is refused by all of them in the same words.
"""

import json
import os
import re

import pytest
from werkzeug.datastructures import FileStorage

from server.cluster.remote_engine import check_spec
from server.engine import Engine, EngineError
from server.source_kinds import KINDS, unknown_kind
from server.source_specs import SourceSpecError, parse_cli_spec
from server.web.app import create_app
from server.web.contract import contract
from server.web.request_parsing import parse_source_request
from server.web.uploads import UploadStore
from tests.support.web import music_file, write_wav

# A request and a command-line source per kind: a new kind fails this module until it has both.
EXAMPLES = {
    "demo": ({"kind": "demo"}, "demo"),
    "mic": ({"kind": "mic", "device": 3}, "mic:3"),
    "stream": ({"kind": "stream", "url": "https://radio.example/live.mp3"}, "url:https://radio.example/live.mp3"),
    "file": ({"kind": "file", "path": "{song}"}, "file:{song}"),
    "upload": ({"kind": "upload", "upload_id": "{upload}"}, None),
}


@pytest.fixture(scope="module")
def engine():
    eng = Engine()  # not started: the model is not needed to parse, start or refuse
    yield eng
    eng.shutdown()


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    return music_file(tmp_path_factory.mktemp("song"))


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    store = UploadStore(str(tmp_path_factory.mktemp("uploads")))
    wav = write_wav(tmp_path_factory.mktemp("up") / "clip.wav", seconds=1.0)
    with open(wav, "rb") as f:
        return store, store.save(FileStorage(f, filename="clip.wav"))["upload_id"]


@pytest.fixture(scope="module")
def web(engine, song, tmp_path_factory):
    return create_app(engine, upload_dir=str(tmp_path_factory.mktemp("web-uploads")), max_upload_mb=1,
                      media_dirs=[os.path.dirname(song)])


def _fill(value, song, upload_id):
    return json.loads(json.dumps(value).replace("{song}", song).replace("{upload}", upload_id))


def test_every_kind_has_an_example():
    assert set(EXAMPLES) == set(KINDS)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_registered_kind_is_accepted_by_every_layer(kind, song, uploads, web):
    store, upload_id = uploads
    request, cli_text = _fill(EXAMPLES[kind], song, upload_id)
    spec = parse_source_request(request, store, "start_source", media_dirs=[os.path.dirname(song)])
    # Requests become specs of kinds a worker can run: the cluster's check takes them.
    assert check_spec(spec) is spec and spec["kind"] in KINDS and KINDS[spec["kind"]].build is not None
    if KINDS[kind].cli is None:
        assert cli_text is None, f"{kind} has no command-line syntax"
    else:
        parsed = parse_cli_spec(cli_text)
        assert parsed["kind"] == kind and check_spec(parsed) is parsed
    offered = [k["kind"] for k in contract()["source_kinds"]]
    assert kind in offered
    html = web[0].test_client().get("/").get_data(as_text=True)
    assert f'data-tab="{kind}"' in html and f'data-panel="{kind}"' in html


def test_the_page_offers_the_registered_kinds_in_order(web):
    html = web[0].test_client().get("/").get_data(as_text=True)
    assert re.findall(r'data-tab="([^"]+)"', html) == [k for k in KINDS if KINDS[k].page]


def test_an_unregistered_kind_is_refused_everywhere_in_the_same_words(web, engine):
    app, sio = web
    words = str(unknown_kind("radio"))
    assert words.startswith("unknown source kind 'radio'")
    res = app.test_client().post("/api/sources", json={"kind": "radio"})
    assert res.status_code == 400 and res.json["error"] == f"POST /api/sources: {words}."
    sc = sio.test_client(app)
    ack = sc.emit("start_source", {"kind": "radio"}, callback=True)
    sc.disconnect()
    assert ack == {"ok": False, "error": f"start_source: {words}."}
    with pytest.raises(EngineError) as started:
        engine.start_source({"kind": "radio"})
    with pytest.raises(EngineError) as checked:
        check_spec({"kind": "radio"})
    with pytest.raises(SourceSpecError) as cli:
        parse_cli_spec("radio:http://radio.example/live")
    assert str(started.value) == str(checked.value) == words
    assert str(cli.value).startswith(words + ";")


def _rest_and_socket(web, rest, event, payload):
    """(REST status, REST error, Socket.IO error), each error without the request's name."""
    app, sio = web
    method, path, body = rest
    res = app.test_client().open(path, method=method, json=body)
    sc = sio.test_client(app)
    ack = sc.emit(event, payload, callback=True)
    sc.disconnect()
    assert not ack["ok"] and res.status_code >= 400
    assert res.json["error"].startswith(f"{method} {path}: ") and ack["error"].startswith(f"{event}: ")
    return res.status_code, res.json["error"].split(": ", 1)[1], ack["error"].split(": ", 1)[1]


@pytest.mark.parametrize("rest, event, payload, status, words", [
    (("DELETE", "/api/sources/nope", None), "stop_source", {"id": "nope"}, 404, "no running source with id 'nope'."),
    (("POST", "/api/sources/nope/restart", None), "restart_source", {"id": "nope"}, 404,
     "no running source with id 'nope'."),
    (("PUT", "/api/sources/nope/rules", {"rules": []}), "set_rules", {"source": "nope", "rules": []}, 404,
     "no running source with id 'nope'."),
])
def test_rest_and_socketio_refuse_an_unknown_source_alike(web, rest, event, payload, status, words):
    assert _rest_and_socket(web, rest, event, payload) == (status, words, words)


def test_rest_and_socketio_refuse_bad_rules_alike(web, engine):
    source_id = engine.start_source({"kind": "demo"})
    try:
        status, rest, socket = _rest_and_socket(
            web, ("PUT", f"/api/sources/{source_id}/rules", {"rules": "loud"}), "set_rules",
            {"source": source_id, "rules": "loud"})
    finally:
        engine.stop_source(source_id)
    assert status == 400 and rest == socket == "'rules' must be a list."
