"""The dashboard in real headless Chromium shows the alert webhook's counts and says when settings
could not be saved (real server, real model, a real read-only data directory)."""

import json
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.web import CHROMIUM, CHROMIUM_ARGS, live_server

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

playwright_api = pytest.importorskip("playwright.sync_api")

WAIT_MS = 240_000  # model load on a shared CPU; waits end as soon as the page has it


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there: every POST is refused


def test_webhook_counts_and_unsaved_settings_on_the_dashboard(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    if subprocess.run(["chattr", "-i", str(tmp_path)], capture_output=True).returncode != 0:
        pytest.skip("needs root and chattr to make the data directory read-only")
    data, media = tmp_path / "data", tmp_path / "media"
    data.mkdir()
    media.mkdir()
    silent = media / "silence.wav"
    sf.write(silent, np.zeros(22050 * 60, dtype=np.float32), 22050)
    (data / "settings.json").write_text(json.dumps({
        "webhook": f"http://127.0.0.1:{closed_port()}/hook"}))
    spec = f"file:{silent}"
    with live_server(spec, extra_args=["--data-dir", str(data), "--media-dir", str(media)]) as srv, \
            playwright_api.sync_playwright() as pw:
        sources = json.loads(urllib.request.urlopen(srv.url + "/api/sources", timeout=10).read())
        sid = sources["sources"][0]["id"]
        req = urllib.request.Request(f"{srv.url}/api/sources/{sid}/rules", method="PUT",
                                     data=json.dumps({"rules": [{"type": "silence", "for": 2}]}).encode(),
                                     headers={"Content-Type": "application/json"})
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(srv.url)
        page.wait_for_function("() => !document.getElementById('webhook-status').hidden", timeout=WAIT_MS)
        assert "0 failed" in page.text_content("#webhook-status")
        # Rules can be set once the model is ready; the silence rule then fires and the POST fails.
        for _ in range(240):
            try:
                urllib.request.urlopen(req, timeout=10).close()
                break
            except urllib.error.HTTPError:
                page.wait_for_timeout(1000)
        page.wait_for_function("() => /[1-9]\\d* failed/.test(document.getElementById('webhook-status').textContent)",
                               timeout=60_000)
        assert "Alerts could not be delivered" in page.text_content("body")
        assert "/hook" not in page.text_content("#webhook-status")
        # Settings that cannot be saved: the change holds and the page says so.
        subprocess.run(["chattr", "+i", str(data)], check=True)
        try:
            body = json.dumps({"segments": {"min_duration": 9}}).encode()
            put = urllib.request.Request(srv.url + "/api/monitoring", method="PUT", data=body,
                                         headers={"Content-Type": "application/json"})
            reply = json.loads(urllib.request.urlopen(put, timeout=10).read())
            assert reply["saved"] is False and reply["segments"]["min_duration"] == 9.0, reply
            page.wait_for_function("() => document.body.textContent.includes('settings could not be saved')",
                                   timeout=20_000)
        finally:
            subprocess.run(["chattr", "-i", str(data)], check=True)
        assert not errors, errors
        browser.close()
