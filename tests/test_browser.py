"""The dashboard in real headless Chromium against the real server and model."""

from pathlib import Path

import pytest

import json
import urllib.request

from tests.support.web import CHROMIUM, CHROMIUM_ARGS, ROOT, live_server, music_files

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

playwright_api = pytest.importorskip("playwright.sync_api")

WAIT_MS = 240_000  # model load on a shared CPU; waits end as soon as the page has data
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    a, b = music_files(tmp_path_factory.mktemp("browser"), 2)
    with live_server(f"file:{a}", f"file:{b}") as srv:
        # Segments need min_duration of one genre; 4 s lets them appear within the test.
        req = urllib.request.Request(srv.url + "/api/monitoring", method="PUT",
                                     data=json.dumps({"segments": {"min_duration": 4}}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).close()
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
    # One smoothed and one faint raw line per genre.
    assert state["timelineTraces"] == 2 * len(state["labels"]) and state["timelinePoints"] >= 1
    assert state["sources"] and state["sources"][0] in ("running", "ended")
    assert state["windows"] >= 1
    assert state["conn"] == "live"

    models = page.locator("#model-select option")
    assert models.count() >= 1

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
    assert not page.errors, page.errors


def test_sources_segments_summary_and_side_by_side(server, page):
    page.goto(server.url)
    page.wait_for_function(
        """() => {
            const items = document.querySelectorAll('#source-list li');
            const band = (document.getElementById('timeline-plot').layout || {}).shapes || [];
            const pie = document.getElementById('summary-plot').data || [];
            return items.length >= 2 && band.length >= 1 && document.querySelectorAll('#segment-list li').length >= 1
                && pie.length === 1 && pie[0].values.length >= 1;
        }""",
        timeout=WAIT_MS,
    )
    state = page.evaluate(
        """() => {
            const plot = document.getElementById('timeline-plot');
            const labels = window.genreMonitor.store.model.labels;
            return {
                labels,
                badges: [...document.querySelectorAll('#source-list li .badge')].map((b) => b.textContent),
                bandGenres: plot.layout.shapes.map((s) => s.fillcolor),
                traces: plot.data.length,
                segments: [...document.querySelectorAll('#segment-list li .name')].map((n) => n.textContent),
                when: document.querySelector('#segment-list li .when').textContent,
                pie: document.getElementById('summary-plot').data[0].labels,
                exportHref: document.querySelector('#exports a[data-what=segments][data-ext=csv]').getAttribute('href'),
            };
        }"""
    )
    assert len(state["badges"]) >= 2 and all(b.startswith(("running", "ended")) for b in state["badges"])
    # Smoothed and raw lines per genre, raw first.
    assert state["traces"] == 2 * len(state["labels"])
    assert all(g in state["labels"] + ["uncertain"] for g in state["segments"])
    assert "–" in state["when"]
    assert set(state["pie"]) <= set(state["labels"]) | {"uncertain"}
    assert state["exportHref"].startswith("/api/export/segments.csv?source=")
    with urllib.request.urlopen(server.url + state["exportHref"], timeout=10) as res:
        assert res.read().decode().startswith("start_wall,")

    page.uncheck("#raw-toggle")
    page.wait_for_function(
        "() => document.getElementById('timeline-plot').data.length === window.genreMonitor.store.model.labels.length")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-monitoring.png"))

    page.click("#mode-grid")
    page.wait_for_function(
        """() => [...document.querySelectorAll('#grid-view .card.mini')].filter(
            (c) => c.querySelector('.mini-genre').textContent !== '—' && c.querySelectorAll('.mini-bar').length).length >= 2""",
        timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "side-by-side.png"))
    page.locator("#grid-view .card.mini").first.click()
    assert page.is_visible("#timeline-plot") and not page.is_visible("#grid-view")
    assert not page.errors, page.errors


def test_failed_start_shows_a_toast(server, page):
    page.goto(server.url)
    page.click("[data-tab=file]")
    page.fill("#file-path", "/no/such/track.flac")
    page.click("#start-btn")
    toast = page.locator(".toast.error").first
    toast.wait_for(timeout=30_000)
    assert "--media-dir" in toast.inner_text()  # server files are off unless the operator allows a folder
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


def _open_with_a_genre(server, page):
    """The dashboard, once its viewed source shows a genre (a window to build fake ones from)."""
    page.goto(server.url)
    page.wait_for_function("() => window.genreMonitor.store.model && window.genreMonitor.store.viewing"
                           " && document.querySelector('#top-genre').textContent.trim() !== '—'", timeout=WAIT_MS)


def test_talk_shows_as_speech_not_a_genre(server, page):
    """A window the server calls speech: "Speech" in the now-playing card, a talk band in the timeline."""
    _open_with_a_genre(server, page)
    state = page.evaluate(
        """() => new Promise((done) => {
            const gm = window.genreMonitor;
            const last = gm.store.buffer(gm.store.viewing).last;
            const talk = (k) => ({ ...last, wall: last.wall + 0.2 * k, t: last.t + 0.2 * k, content: 'speech',
              content_probs: { music: 0.02, speech: 0.97, noise: 0.01 }, top: null, confidence: null,
              smoothed_top: null, uncertain: false });
            const handlers = gm.socket.listeners('prediction');
            for (let k = 1; k <= 3; k += 1) handlers.forEach((h) => h(talk(k)));
            const card = { genre: document.querySelector('#top-genre').textContent.trim(),
              state: document.getElementById('now-card').dataset.state,
              conf: document.getElementById('top-confidence').textContent };
            requestAnimationFrame(() => requestAnimationFrame(() => {
              const plot = document.getElementById('timeline-plot');
              done({ ...card, noGenre: gm.store.model.no_genre,
                talkBands: (plot.layout.shapes || []).filter((sh) => sh.layer === 'below' && sh.y1 === 1).length });
            }));
        })"""
    )
    assert state["genre"] == "Speech" and state["state"] == "content" and "no genre" in state["conf"]
    assert state["noGenre"] == ["speech", "silence", "noise"]
    assert state["talkBands"] == 1
    assert not page.errors, page.errors


def test_every_genre_name_fits_the_now_playing_card(server, page):
    """The card's big genre name is shown whole, never cut to "Electro…", for every label the model has,
    at a laptop's width and at a narrow window's."""
    _open_with_a_genre(server, page)
    cut = {}
    for width in (1280, 1000):
        page.set_viewport_size({"width": width, "height": 800})
        cut[width] = page.evaluate(
            """() => {
                const el = document.getElementById('top-genre');
                const shown = el.textContent;
                const labels = window.genreMonitor.store.model.labels;
                const cut = labels.filter((label) => { el.textContent = label; return el.scrollWidth > el.clientWidth; });
                el.textContent = shown;
                return { cut, n: labels.length };
            }""")
    assert cut[1280]["n"] >= 10 and "electronic" in page.evaluate("window.genreMonitor.store.model.labels")
    assert cut[1280]["cut"] == [] and cut[1000]["cut"] == [], cut


def test_tempo_shows_with_the_octave_it_may_be(server, page):
    """A music window's tempo in the now-playing card, its alternative after it; none for talk."""
    _open_with_a_genre(server, page)
    state = page.evaluate(
        """() => {
            const gm = window.genreMonitor;
            const last = gm.store.buffer(gm.store.viewing).last;
            const send = (k, extra) => gm.socket.listeners('prediction').forEach((h) => h(
              { ...last, wall: last.wall + 50 + k, t: last.t + 50 + k, ...extra }));
            const tempo = () => { const el = document.getElementById('top-tempo');
              return { hidden: el.hidden, text: el.textContent, title: el.title }; };
            send(1, { content: 'music', tempo: { bpm: 127.6, clarity: 0.4, alternative: 63.8 } });
            const music = tempo();
            send(2, { content: 'music', tempo: { bpm: 92.2, clarity: 0.5, alternative: null } });
            const sure = tempo();
            send(3, { content: 'speech', top: null, confidence: null, smoothed_top: null, tempo: null,
                      content_probs: { music: 0.02, speech: 0.97, noise: 0.01 } });
            return { music, sure, talk: tempo() };
        }"""
    )
    assert state["music"]["text"] == "128 BPM (or 64)" and not state["music"]["hidden"]
    assert "63.8" in state["music"]["title"]
    assert state["sure"]["text"] == "92 BPM"
    assert state["talk"]["hidden"]
    assert not page.errors, page.errors


@pytest.fixture(scope="module")
def other_server(tmp_path_factory):
    """The app on a model with eight genres of its own (not GTZAN's ten), playing one file."""
    from tests.support.models import relabelled_model

    model_dir = relabelled_model(tmp_path_factory.mktemp("models") / "other")
    a, = music_files(tmp_path_factory.mktemp("browser-other"), 1)
    with live_server(f"file:{a}", extra_args=["--model", model_dir]) as srv:
        yield srv


def _api(server, method, path, body=None):
    req = urllib.request.Request(server.url + path, method=method, headers={"Content-Type": "application/json"},
                                 data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())


def test_a_model_with_other_genres_its_rules_and_a_switch_back(other_server, page):
    """Colours by genre name, a rule genre the model lacks shown greyed and kept on save, and a
    timeline that keeps both label sets across a model switch."""
    from tests.support.models import OTHER_LABELS

    page.goto(other_server.url)
    page.wait_for_function(
        """(labels) => {
            const m = window.genreMonitor.store.model;
            const probs = document.getElementById('probs-plot').data;
            return m && m.ready && m.labels.join() === labels.join() && probs && probs[0].y.length === labels.length
                && document.querySelector('#top-genre').textContent.trim() !== '—';
        }""", arg=list(OTHER_LABELS), timeout=WAIT_MS)
    source = _api(other_server, "GET", "/api/sources")["sources"][0]["id"]
    rule = {"type": "unexpected_genre", "expected": ["jazz", "reggae"], "for": 60}
    assert _api(other_server, "PUT", f"/api/sources/{source}/rules", {"rules": [rule]})["missing_genres"] == ["reggae"]

    bars = page.evaluate("() => { const t = document.getElementById('probs-plot').data[0];"
                         " return { labels: t.y, colors: t.marker.color }; }")
    assert bars["labels"] == list(OTHER_LABELS)
    assert all(len(c) in (7, 9) and c.startswith("#") for c in bars["colors"]), bars  # "#rrggbb", maybe alpha
    colors = dict(zip(bars["labels"], (c[:7] for c in bars["colors"])))
    assert colors["electronic"] == "#4361ee" and len(set(colors.values())) == len(OTHER_LABELS), colors

    page.click("#rules-btn")
    page.wait_for_selector("#rules-dialog[open] .chip")
    chips = page.evaluate("""() => [...document.querySelectorAll('#rule-genres .chip')].map((c) => ({
        name: c.querySelector('input').value, checked: c.querySelector('input').checked,
        missing: c.classList.contains('missing') }))""")
    assert [c["name"] for c in chips] == [*OTHER_LABELS, "reggae"]
    assert [c["name"] for c in chips if c["checked"]] == ["jazz", "reggae"]
    assert [c["name"] for c in chips if c["missing"]] == ["reggae"]
    assert "not a genre of model other" in page.inner_text("#rule-missing")
    assert "Rule 1 (unexpected_genre): the model has no reggae; watches jazz only." in page.inner_text("#rule-missing")
    page.click("#rules-dialog button[type=submit]")
    page.wait_for_selector("#rules-dialog", state="hidden")
    page.locator(".toast", has_text="reggae").first.wait_for(timeout=10_000)
    assert _api(other_server, "GET", f"/api/sources/{source}/rules")["rules"][0]["expected"] == ["jazz", "reggae"]

    page.select_option("#model-select", "default")
    state = page.wait_for_function(
        """(other) => {
            const m = window.genreMonitor.store.model;
            const probs = document.getElementById('probs-plot').data[0];
            const names = new Set(document.getElementById('timeline-plot').data.map((d) => d.name));
            if (!m || !m.ready || m.name !== 'default' || probs.y.join() !== m.labels.join()) return null;
            const onlyDefault = m.labels.filter((l) => !other.includes(l));
            return names.has('soul') && onlyDefault.some((l) => names.has(l)) && { labels: m.labels, names: [...names] };
        }""", arg=list(OTHER_LABELS), timeout=WAIT_MS).json_value()
    assert set(state["names"]) == set(state["labels"]) | set(OTHER_LABELS), state
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-other-labels.png"))
    assert not page.errors, page.errors

    # A reload draws the last minutes from the history, which spans both models' label sets.
    page.reload()
    page.wait_for_function(
        """(other) => {
            const gm = window.genreMonitor;
            const preds = gm.store.viewing ? gm.store.buffer(gm.store.viewing).predictions : [];
            const names = new Set((document.getElementById('timeline-plot').data || []).map((d) => d.name));
            return preds.some((p) => p.fromHistory && p.labels.includes('soul')) && names.has('soul')
                && gm.store.model && gm.store.model.labels.some((l) => !other.includes(l) && names.has(l));
        }""", arg=list(OTHER_LABELS), timeout=WAIT_MS)
    assert not page.errors, page.errors
