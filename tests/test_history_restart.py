"""Durable history end to end: the real server is killed with SIGKILL and restarted."""

import json
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.support.wait import wait_until
from tests.support.web import live_server, music_file

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def history(url):
    """Windows so far; the API answers 404 until the source has its first window."""
    try:
        return get_json(url)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise


def test_history_and_sources_survive_kill_9(tmp_path):
    data = str(tmp_path / "data")
    song = music_file(tmp_path)
    with live_server(f"file:{song}", extra_args=["--data-dir", data, "--hop", "0.5"]) as srv:
        sid = wait_until(lambda: [s["id"] for s in get_json(srv.url + "/api/sources")["sources"]], 60, 0.3)[0]
        url = f"{srv.url}/api/history?source={sid}&from=0"
        before = wait_until(lambda: len(h := history(url)) >= 8 and h, 120, 0.3, srv.log)
        time.sleep(1.5)  # windows logged more than a second before the kill must survive it
        seen = history(url)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
    assert len(seen) >= len(before)

    # Restarted with no --source: the same source comes back, and so does its history.
    with live_server(extra_args=["--data-dir", data]) as srv:
        sources = wait_until(lambda: get_json(srv.url + "/api/sources")["sources"], 60, 0.3)
        assert [s["id"] for s in sources] == [sid]
        after = get_json(f"{srv.url}/api/history?source={sid}&from=0&to={time.time() + 60}")
        walls = {round(w["wall"], 3) for w in after}
        missing = [w for w in before if round(w["wall"], 3) not in walls]
        assert not missing, f"{len(missing)} windows logged before the kill are gone"
        for w in after[:3]:
            assert abs(sum(w["probs"].values()) - 1) < 1e-3
