"""settings.json: checked at start-up with the API's schemas; a bad field falls back to its default,
the file as it was is kept aside (never overwriting an earlier one) and the server still starts."""

import json
import urllib.request

from server.settings import DEFAULTS, Settings
from tests.support.wait import wait_until
from tests.support.web import live_server

BAD = {"retention_days": "abc", "segments": "x", "rules": "x", "sources": "demo",
       "smoothing": {"kind": "median", "n": 3}, "webhook": None}


def test_bad_fields_fall_back_to_defaults_and_the_file_is_kept(tmp_path, caplog):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(BAD))
    settings = Settings(path)
    for key in ("retention_days", "segments", "rules", "sources"):
        assert settings[key] == DEFAULTS[key], key
        assert any(f"'{key}'" in p for p in settings.problems), settings.problems
        assert f"'{key}'" in caplog.text
    assert settings["smoothing"] == {"kind": "median", "n": 3}  # the good field is kept
    assert json.loads((tmp_path / "settings.json.bad").read_text()) == BAD
    # The file left in place is the repaired one: the next start finds nothing wrong.
    assert json.loads(path.read_text())["smoothing"] == {"kind": "median", "n": 3}
    assert Settings(path).problems == []


def test_a_second_bad_file_does_not_overwrite_the_first(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"retention_days": "abc"}))
    Settings(path)
    path.write_text("{ not json")
    Settings(path)
    path.write_text(json.dumps({"rules": {"radio": [{"type": "silence", "for": -1}]}}))
    assert "for" in Settings(path).problems[0]
    assert json.loads((tmp_path / "settings.json.bad").read_text()) == {"retention_days": "abc"}
    assert (tmp_path / "settings.json.bad.1").read_text() == "{ not json"
    assert "radio" in (tmp_path / "settings.json.bad.2").read_text()


def test_saved_sources_and_monitoring_are_checked_like_api_input(tmp_path):
    path = tmp_path / "settings.json"
    good_source = {"kind": "file", "paths": ["/music/a.flac"], "id": "file-a", "hop": 1.0, "loop": True}
    path.write_text(json.dumps({"sources": [good_source], "segments": {"min_duration": 4, "max_gap": 0}}))
    settings = Settings(path)
    assert settings["sources"] == [good_source]
    assert settings["segments"] == DEFAULTS["segments"] and "max_gap" in settings.problems[0]
    path.write_text(json.dumps({"sources": [good_source, {"kind": "demo", "hop": 99}]}))
    settings = Settings(path)  # the bad entry costs only itself
    assert settings["sources"] == [good_source] and "'sources'[1].hop" in settings.problems[0]


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as res:
        return res.status, json.loads(res.read())


def test_server_starts_with_a_bad_settings_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "settings.json").write_text(json.dumps(BAD))
    with live_server(extra_args=["--data-dir", str(data)]) as srv:
        assert _get(srv.url + "/api/monitoring")[0] == 200
        status, payload = _get(srv.url + "/api/sources")
        assert status == 200 and [s["label"] for s in payload["sources"]] == ["Demo playlist"], payload
        # The model still loads (its thread used the saved rules and segments).
        payload = wait_until(lambda: (p := _get(srv.url + "/api/sources")[1])["model"]["ready"] and p, 120, 0.5,
                             srv.log)
        assert payload["model"]["error"] is None, srv.log()
        source_id = payload["sources"][0]["id"]
        req = urllib.request.Request(f"{srv.url}/api/sources/{source_id}/rules", method="PUT",
                                     data=json.dumps({"rules": [{"type": "silence", "for": 5}]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as res:
            assert res.status == 200
        log = srv.log()
        assert "'retention_days'" in log and "'rules'" in log and "Traceback" not in log, log
    assert (data / "settings.json.bad").exists()
