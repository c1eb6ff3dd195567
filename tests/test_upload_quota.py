"""The upload folder's quota and retention, over real HTTP against a real server process.

An upload that would take the folder beyond ``upload_quota_mb`` is refused with 507 and a
message saying so, and leaves nothing behind; at start, uploads no source uses that are older
than ``upload_retention_days`` are removed, and nothing else is.
"""

import json
import os
import time
import urllib.error
import urllib.request
import uuid

from server.web.uploads import MB, UPLOAD_QUOTA_MB
from tests.support.web import app_server, write_wav

DAY = 86400.0


def post_upload(url: str, path: str, name: str | None = None):
    """(status, JSON answer) of a multipart POST /api/upload with the file at ``path``."""
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        data = f.read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name or os.path.basename(path)}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "/api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def folder_bytes(folder) -> int:
    return sum(e.stat().st_size for e in os.scandir(folder) if e.is_file())


def test_an_upload_beyond_the_quota_is_refused_with_507(tmp_path):
    song = write_wav(tmp_path / "song.wav", seconds=9.0)  # about 0.4 MB
    size = os.path.getsize(song)
    assert 0.3 * MB < size < 0.5 * MB
    folder = tmp_path / "uploads"
    with app_server(upload_dir=str(folder), upload_quota_mb=1) as srv:
        accepted = []
        for i in range(2):
            status, answer = post_upload(srv.url, song, f"take {i}.wav")
            assert status == 200, answer
            accepted.append(answer["upload_id"])
        used = folder_bytes(folder)
        assert used == 2 * size
        status, answer = post_upload(srv.url, song, "one too many.wav")
        print(f"quota 1 MB: {used} bytes stored, third upload -> {status} {answer['error']!r}")
        assert status == 507, answer
        assert "upload folder is full" in answer["error"] and "1.0 MB quota" in answer["error"], answer
        assert folder_bytes(folder) == used and len(os.listdir(folder)) == 2  # nothing of it was kept
        # Smaller files fit in what is left, until the folder is full: it never goes beyond the quota.
        small = write_wav(tmp_path / "small.wav", seconds=2.0)
        statuses = [post_upload(srv.url, small)[0] for _ in range(5)]
        assert statuses[0] == 200 and statuses[-1] == 507 and statuses == sorted(statuses), statuses
        assert folder_bytes(folder) <= 1 * MB


def test_old_unused_uploads_are_removed_at_start(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    old = time.time() - 40 * DAY
    names = {"old_unused": "0123456789abcdef.wav", "old_used": "fedcba9876543210.wav",
             "new_unused": "00112233445566aa.wav", "not_an_upload": "my-notes.wav",
             "old_unused_mp3": "aabbccddeeff0011.mp3"}
    for key, name in names.items():
        write_wav(folder / name, seconds=1.0)
        if key != "new_unused":
            os.utime(folder / name, (old, old))
    used = str(folder / names["old_used"])
    with app_server(upload_dir=str(folder), upload_retention_days=30,
                    sources=[{"kind": "file", "path": used, "loop": True}]) as srv:
        left = set(os.listdir(folder))
        log = srv.log()
    assert left == {names["old_used"], names["new_unused"], names["not_an_upload"]}, left
    assert "removed 2 upload(s) unused for over 30 days" in log, log


def test_quota_and_retention_come_from_settings_json(tmp_path):
    from server.engine import Engine
    from server.settings import Settings
    from server.web.app import create_app

    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"upload_quota_mb": 3, "upload_retention_days": 1}))
    folder = tmp_path / "up"
    folder.mkdir()
    write_wav(folder / "0123456789abcdef.wav", seconds=1.0)
    two_days_ago = time.time() - 2 * DAY
    os.utime(folder / "0123456789abcdef.wav", (two_days_ago, two_days_ago))
    engine = Engine(settings=Settings(path))
    try:
        app, _ = create_app(engine, upload_dir=str(folder))
        assert app.extensions["genre_uploads"].quota_bytes == 3 * MB
        assert os.listdir(folder) == []  # older than the 1 day the settings give
        app, _ = create_app(Engine(), upload_dir=str(folder))
        assert app.extensions["genre_uploads"].quota_bytes == UPLOAD_QUOTA_MB * MB
    finally:
        engine.shutdown()
    path.write_text(json.dumps({"upload_quota_mb": 0, "upload_retention_days": "x"}))
    problems = Settings(path).problems
    assert any("upload_quota_mb" in p for p in problems) and any("upload_retention_days" in p for p in problems)
