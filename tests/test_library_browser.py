"""The library page in real headless Chromium against the real server: analyse a media folder through
the page, then sort, filter and play."""

import shutil
from pathlib import Path

import pytest

from tests.support.web import CHROMIUM, CHROMIUM_ARGS, ROOT, live_server

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

playwright_api = pytest.importorskip("playwright.sync_api")

WAIT_MS = 300_000  # two worker processes load the model on a shared CPU


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    media = tmp_path_factory.mktemp("media")
    for src in sorted((ROOT / "media" / "demo").glob("*.ogg"))[:3]:
        shutil.copy(src, media / src.name)
    (media / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    with live_server("demo", extra_args=["--media-dir", str(media)]) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        yield page
        browser.close()


def rows(page):
    return page.eval_on_selector_all("#lib-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def test_analyse_sort_filter_and_play(server, page):
    page.goto(server.url)
    page.click("#library-link")
    page.wait_for_url("**/library")
    page.click("#lib-start")
    page.wait_for_function("document.querySelectorAll('#lib-table tbody tr').length === 3", timeout=WAIT_MS)
    assert "skipped 1: not an audio file 1" in page.text_content("#lib-summary")
    assert page.text_content("#lib-count") == "3 tracks"
    # Each genre's share bar in the colour the live dashboard gives that genre.
    shares = page.evaluate("""async () => {
        const { genreColor } = await import('/static/js/genreColors.js');
        const probe = document.createElement('div');
        document.body.append(probe);
        const rgb = (c) => { probe.style.background = c; return getComputedStyle(probe).backgroundColor; };
        const box = document.getElementById('lib-share-bars');
        return [...box.querySelectorAll('button')].map((b) => {
          const bar = b.nextElementSibling;
          return [b.textContent, getComputedStyle(bar).backgroundColor, rgb(genreColor(b.textContent))];
        });
    }""")
    shares = [s for s in shares if not s[0].startswith("(")]  # "(speech)" and the like: no genre, muted
    assert shares and all(bar == expected for _, bar, expected in shares), shares
    assert len({bar for _, bar, _ in shares}) == len(shares), shares  # different genres, different colours
    page.click("th[data-key=confidence]")  # numbers sort highest first
    confs = [float(r[3]) for r in rows(page)]
    assert confs == sorted(confs, reverse=True)
    page.click("th[data-key=confidence]")
    assert [float(r[3]) for r in rows(page)] == sorted(confs)
    first_genre = rows(page)[0][2]
    page.select_option("#lib-genre", first_genre)
    assert {r[2] for r in rows(page)} == {first_genre}
    page.select_option("#lib-genre", "")
    page.fill("#lib-search", "city-blues")
    assert [r[1] for r in rows(page)] == ["03-city-blues.ogg"]
    page.click("#lib-table tbody tr .play")
    page.wait_for_function("document.querySelector('#lib-player').readyState >= 1", timeout=30_000)
    assert "03-city-blues.ogg" in page.eval_on_selector("#lib-player", "a => decodeURIComponent(a.src)")
    assert page.errors == []
