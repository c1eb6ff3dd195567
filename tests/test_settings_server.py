"""Settings limits and saves against real server processes (``run.py serve``), real files.

- The API and settings.json share one limit: the 201st source is refused with a 400, the
  200 sources and their rules all come back after a restart, and a deleted source's rules
  go with it. A rule's name and ``for`` are bounded (a 400 naming the field).
- A read-only data directory: at start one ``error:`` line; at run time the action's real
  outcome in the reply (``saved: false`` and why), a notice on the dashboard, and the
  change saved once the directory is writable again.
- One server per data directory: the second one stops with a clear error.
"""

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import socketio

from server.config import MAX_SOURCES
from tests.support.wait import wait_until
from tests.support.web import ROOT, live_server, write_wav

pytestmark = pytest.mark.slow  # real servers with the model: see pyproject.toml


def call(srv, method, path, body=None):
    """(status, JSON reply) of one request; 4xx/5xx replies are returned, not raised."""
    req = urllib.request.Request(srv.url + path, method=method, headers={"Content-Type": "application/json"},
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def model_ready(srv):
    wait_until(lambda: call(srv, "GET", "/api/sources")[1]["model"]["ready"], 180, 0.5, srv.log)


def serve_args(data, media):
    return ["--data-dir", str(data), "--media-dir", str(media), "--fast"]


def test_one_limit_for_the_api_and_the_file_and_rules_go_with_their_source(tmp_path):
    media, data = tmp_path / "media", tmp_path / "data"
    media.mkdir()
    song = write_wav(media / "one-second.wav", seconds=1.0)
    rule = {"type": "silence", "for": 5, "name": "quiet"}
    with live_server(extra_args=serve_args(data, media)) as srv:
        model_ready(srv)
        ids = [s["id"] for s in call(srv, "GET", "/api/sources")[1]["sources"]]  # the demo
        for _ in range(MAX_SOURCES - len(ids)):
            status, reply = call(srv, "POST", "/api/sources", {"kind": "file", "path": song})
            assert status == 200, reply
            ids.append(reply["id"])
        for sid in ids:
            status, reply = call(srv, "PUT", f"/api/sources/{sid}/rules", {"rules": [rule]})
            assert status == 200, reply
        status, reply = call(srv, "POST", "/api/sources", {"kind": "file", "path": song})
        assert status == 400 and "too many sources" in reply["error"] and "200" in reply["error"], reply
        # Names bounded like a source's label; 'for' bounded: a 400 naming the field.
        status, reply = call(srv, "PUT", f"/api/sources/{ids[1]}/rules",
                             {"rules": [{**rule, "name": "x" * 1_100_000}]})
        assert status == 400 and "'name' is too long" in reply["error"] and len(reply["error"]) < 300, reply
        status, reply = call(srv, "PUT", f"/api/sources/{ids[1]}/rules", {"rules": [{**rule, "for": 1e308}]})
        assert status == 400 and "'for'" in reply["error"], reply
        # A deleted source's rules go with it.
        assert call(srv, "DELETE", f"/api/sources/{ids[-1]}")[0] == 200
        saved = json.loads((data / "settings.json").read_text())
        assert ids[-1] not in saved["rules"] and len(saved["rules"]) == MAX_SOURCES - 1
    with live_server(extra_args=serve_args(data, media)) as srv:  # everything that fits comes back
        sources = call(srv, "GET", "/api/sources")[1]["sources"]
        assert sorted(s["id"] for s in sources) == sorted(ids[:-1])
        assert "Traceback" not in srv.log() and "back to their defaults" not in srv.log(), srv.log()
        assert call(srv, "GET", f"/api/sources/{ids[5]}/rules")[1]["rules"] == [{**rule, "for": 5.0, "threshold_db": -50.0}]
    assert not list(data.glob("settings.json.bad*"))


def chattr(flag, path):
    if subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode != 0:
        pytest.skip("needs root and chattr +i to make a folder read-only for root")


def test_a_read_only_data_dir(tmp_path):
    media, data = tmp_path / "media", tmp_path / "data"
    media.mkdir()
    data.mkdir()
    song = write_wav(media / "song.wav", seconds=3.0)
    # At start: one clear error line, no traceback.
    chattr("+i", data)
    try:
        run = subprocess.run([sys.executable, str(ROOT / "run.py"), "serve", "--port", "1", *serve_args(data, media)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        chattr("-i", data)
    assert run.returncode == 2, run
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not writable" in errors[0] and "Traceback" not in run.stderr, run.stderr
    # At run time: the action is done and the reply says the settings could not be saved.
    with live_server(extra_args=serve_args(data, media)) as srv:
        model_ready(srv)
        notices = []
        client = socketio.Client(reconnection=False)
        client.on("notice", notices.append)
        client.connect(srv.url, transports=["websocket"], wait_timeout=10)
        chattr("+i", data)
        try:
            status, reply = call(srv, "POST", "/api/sources", {"kind": "file", "path": song, "label": "kept"})
            assert status == 200 and reply["ok"] and reply["saved"] is False, reply
            assert "settings could not be saved" in reply["warning"], reply
            sid = reply["id"]
            assert sid in [s["id"] for s in call(srv, "GET", "/api/sources")[1]["sources"]]
            status, reply = call(srv, "PUT", f"/api/sources/{sid}/rules", {"rules": [{"type": "talk"}]})
            assert status == 200 and reply["saved"] is False and reply["rules"][0]["type"] == "talk", reply
            wait_until(lambda: any("settings could not be saved" in n["message"] for n in notices), 10, 0.1,
                       lambda: notices)
            assert sid not in (data / "settings.json").read_text()
        finally:
            chattr("-i", data)
        # Writable again: the retried save writes what the server holds.
        wait_until(lambda: sid in json.loads((data / "settings.json").read_text())["rules"], 20, 0.2, srv.log)
        status, reply = call(srv, "PUT", "/api/monitoring", {"segments": {"min_duration": 12}})
        assert status == 200 and "saved" not in reply, reply
        client.disconnect()
        assert "Traceback" not in srv.log(), srv.log()


def test_one_server_per_data_dir(tmp_path):
    data = tmp_path / "data"
    with live_server(extra_args=["--data-dir", str(data)]) as srv:
        run = subprocess.run([sys.executable, str(ROOT / "run.py"), "serve", "--port", "1", "--data-dir", str(data)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, run
        assert f"in use by another server (pid {srv.proc.pid})" in run.stderr, run.stderr
        assert call(srv, "GET", "/api/sources")[0] == 200  # the first one carries on
