"""The library's REST API on the real app (Flask's test client): a run on a folder with progress,
the tracks it found, playing one, and the media-folder fence."""

import shutil
import time
from pathlib import Path

import pytest

from server.engine import Engine
from server.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
DEMO = sorted((ROOT / "media" / "demo").glob("*.ogg"))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    (root / "crate").mkdir()
    for src in DEMO[:2]:
        shutil.copy(src, root / "crate" / src.name)
    (root / "crate" / "readme.txt").write_text("x")
    return root


@pytest.fixture(scope="module")
def client(media, tmp_path_factory):
    engine = Engine()  # not started: these tests exercise the library, not live monitoring
    data = tmp_path_factory.mktemp("data")
    app, _sio = create_app(engine, upload_dir=str(data / "uploads"), media_dirs=[str(media)],
                           library_db=data / "library.sqlite")
    app.extensions["genre_library"].jobs = 1  # in this process: the test client's app has the model already
    yield app.test_client()
    engine.shutdown()


def wait_done(client, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get("/api/library/job").get_json()["job"]
        if job["state"] != "running":
            return job
        time.sleep(0.3)
    raise AssertionError("the library run did not finish")


def test_page_is_served_and_linked_from_the_dashboard(client):
    page = client.get("/library")
    assert page.status_code == 200 and b"js/library.js" in page.data
    assert b'href="/library"' in client.get("/").data


def test_run_on_a_folder_then_list_and_play(client, media):
    assert client.get("/api/library").get_json()["tracks"] == []
    started = client.post("/api/library/scan", json={"folder": "crate"})
    assert started.status_code == 202, started.get_json()
    busy = client.post("/api/library/scan", json={"folder": "crate"})
    job = wait_done(client)
    assert busy.status_code in (202, 409)  # 409 unless the run had already finished
    assert job["state"] == "done", job
    assert job["summary"]["tracks"] == 2 and job["summary"]["skipped"] == 1
    assert job["skipped"][0]["reason"] == "not an audio file"
    tracks = client.get("/api/library").get_json()["tracks"]
    assert sorted(Path(t["path"]).name for t in tracks) == [p.name for p in DEMO[:2]]
    for t in tracks:
        assert t["content"] == "music" and t["genre"] and t["duration"] > 30
    audio = client.get("/api/library/audio", query_string={"path": tracks[0]["path"]})
    assert audio.status_code == 200 and audio.data[:4] == b"OggS"
    again = client.post("/api/library/scan", json={"folder": str(media / "crate")})
    assert again.status_code == 202
    assert wait_done(client)["summary"]["reused"] == 2


@pytest.mark.parametrize("body, status", [
    ({"folder": "/etc"}, 403),
    ({"folder": "../.."}, 403),
    ({"folder": "nope"}, 404),
    ({"folder": "crate", "full": "yes"}, 400),
    ({"folder": "crate", "extra": 1}, 400),
    ({}, 400),
])
def test_bad_scan_requests_are_refused(client, body, status):
    r = client.post("/api/library/scan", json=body)
    assert r.status_code == status and r.get_json()["error"]


def test_files_outside_the_media_folders_are_not_played(client):
    r = client.get("/api/library/audio", query_string={"path": "/etc/passwd"})
    assert r.status_code == 403 and "outside the media folders" in r.get_json()["error"]
