#!/usr/bin/env python3
"""Screenshot of the library page for the README (docs/screenshot-library.png).

Starts ``run.py serve`` on a free port with a media folder holding the demo tracks (or uses
``--url`` and ``--folder``), runs the library analysis on it through the page's own form, waits
for the table, and saves a PNG taken with the system's headless Chromium.

    .venv/bin/python scripts/qa/screenshot_library.py [--out docs/screenshot-library.png] [--folder DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.qa.screenshot import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402
from server.subprocesses import stop_process, wait_until_up  # noqa: E402


def capture(url: str, out: Path, width: int, height: int, timeout_s: float = 600) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
        page.goto(url + "/library")
        page.click("#lib-start")
        page.wait_for_selector("#lib-progress:not([hidden])", timeout=30_000)
        page.wait_for_function("document.querySelector('#lib-progress').hidden && "
                               "document.querySelectorAll('#lib-table tbody tr').length > 0", timeout=timeout_s * 1000)
        page.click("th[data-key=confidence]")  # most confident first
        page.wait_for_timeout(500)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot-library.png")
    parser.add_argument("--folder", type=Path, help="media folder to analyse (default: copies of the demo tracks)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--url", help="use an already running server (started with --media-dir)")
    args = parser.parse_args()
    proc = None
    url = args.url
    if url is None:
        workdir = Path(tempfile.mkdtemp(prefix="gm-shot-lib-"))
        folder = args.folder
        if folder is None:
            folder = workdir / "music"
            shutil.copytree(ROOT / "media" / "demo", folder, ignore=shutil.ignore_patterns("LICENSES", "*.md"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "serve", "--source", "demo", "--host", "127.0.0.1",
                                 "--port", str(port), "--data-dir", str(workdir / "data"), "--media-dir", str(folder)],
                                cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    try:
        wait_until_up(url, proc)
        capture(url, args.out, args.width, args.height)
    finally:
        if proc is not None:
            stop_process(proc)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
