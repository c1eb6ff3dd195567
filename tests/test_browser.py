"""The dashboard in real headless Chromium against the real server and model."""

from pathlib import Path

import pytest

from tests.support.web import CHROMIUM, CHROMIUM_ARGS, ROOT, live_server, music_file

playwright_api = pytest.importorskip("playwright.sync_api")

WAIT_MS = 240_000  # model load on a shared CPU; waits end as soon as the page has data
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = music_file(tmp_path_factory.mktemp("browser"))
    with live_server(f"file:{path}") as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    page.close()


def test_dashboard_updates_from_live_events(server, page):
    page.goto(server.url)
    page.wait_for_function(
        """() => {
            const top = document.querySelector('#top-genre').textContent.trim();
            const spec = document.getElementById('spec-plot').data;
            const probs = document.getElementById('probs-plot').data;
            return top !== '—' && spec && spec[0].z.length === 96 && spec[0].z[0].length > 50
                && probs && probs[0].x.some((v) => v > 0);
        }""",
        timeout=WAIT_MS,
    )
    state = page.evaluate(
        """() => {
            const probs = document.getElementById('probs-plot').data[0];
            const spec = document.getElementById('spec-plot').data[0];
            const timeline = document.getElementById('timeline-plot').data;
            return {
                top: document.querySelector('#top-genre').textContent.trim(),
                labels: probs.y, probs: probs.x,
                specRows: spec.z.length, specCols: spec.z[0].length,
                timelineTraces: timeline.length, timelinePoints: timeline[0].x.length,
                sources: [...document.querySelectorAll('#source-list li .badge')].map((b) => b.textContent),
                windows: Number(document.getElementById('c-windows').textContent),
                conn: document.querySelector('#conn span').textContent,
            };
        }"""
    )
    assert state["top"] in state["labels"]
    assert abs(sum(state["probs"]) - 1.0) <= 1e-3
    assert state["specRows"] == 96 and state["specCols"] > 50
    assert state["timelineTraces"] == len(state["labels"]) and state["timelinePoints"] >= 1
    assert state["sources"] and state["sources"][0] in ("running", "ended")
    assert state["windows"] >= 1
    assert state["conn"] == "live"

    models = page.locator("#model-select option")
    assert models.count() >= 1

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
    assert not page.errors, page.errors


def test_failed_start_shows_a_toast(server, page):
    page.goto(server.url)
    page.click("[data-tab=file]")
    page.fill("#file-path", "/no/such/track.flac")
    page.click("#start-btn")
    toast = page.locator(".toast.error").first
    toast.wait_for(timeout=30_000)
    assert "no such file" in toast.inner_text()
    assert not page.errors, page.errors


def test_upload_from_the_page_starts_a_source(server, page, tmp_path):
    from tests.support.web import write_wav

    track = write_wav(tmp_path / "Upload Test.wav", seconds=6.0)
    page.goto(server.url)
    page.click("[data-tab=upload]")
    page.set_input_files("#upload-input", track)
    page.click("#start-btn")
    item = page.locator("#source-list li.viewing .label")
    item.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => document.querySelector('#source-list li.viewing .label').textContent.includes('Upload Test.wav')",
        timeout=60_000)
    assert "Upload Test.wav" in page.inner_text("#upload-hint")
    assert not page.errors, page.errors
