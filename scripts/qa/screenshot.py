#!/usr/bin/env python3
"""Screenshot of the live dashboard for the README (docs/screenshot.png).

Starts ``run.py serve`` with the demo playlist and a second file source on a
free port (or uses ``--url``), shortens the segment minimum so segments show
within a minute, lets live data arrive, and saves a 1280×900 PNG taken with the
system's headless Chromium (Playwright never downloads a browser here).

    .venv/bin/python scripts/qa/screenshot.py [--out docs/screenshot.png] [--seconds 45] [--mode grid]
    .venv/bin/python scripts/qa/screenshot.py --talk --out docs/screenshot-talk.png   # a DJ link between records

``--talk`` plays one file source instead: music, then talk read by espeak-ng (installed by
``scripts/tools/install_system_deps.sh test``), then music again, to show how talk is reported.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from server.subprocesses import stop_process, wait_until_up

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def put_json(url: str, body: dict) -> None:
    import json

    req = urllib.request.Request(url, method="PUT", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).close()


TALK = ("That was City Blues, and you are listening to the afternoon show. Before the next record, a quick "
        "reminder that the street festival starts this Friday in the park, with free entry for everyone under "
        "sixteen. The weather stays dry until the weekend. Now here is something faster.")


def talk_file(directory: str) -> str:
    """music (20 s) → talk (espeak-ng) → music, written as one WAV in ``directory``."""
    import numpy as np
    import soundfile as sf

    from server.audio.decode import decode
    from server.audio.resample import resample

    sr = 44100
    speech_wav = os.path.join(directory, "talk-voice.wav")
    subprocess.run(["espeak-ng", "-v", "en-gb+m3", "-s", "150", "-w", speech_wav, TALK], check=True)
    voice, vsr = sf.read(speech_wav, dtype="float32")
    parts = []
    for name in ("03-city-blues.ogg", "05-spunky-race.ogg"):
        y, ysr = decode(str(ROOT / "media" / "demo" / name))
        parts.append(resample(y, ysr, sr)[: 20 * sr])
    voice = resample(voice, vsr, sr)
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-9
    voice *= rms(parts[0]) / rms(voice)
    out = os.path.join(directory, "dj-link.wav")
    sf.write(out, np.concatenate([parts[0], voice, parts[1]]), sr)
    return out


def capture(url: str, out: Path, seconds: float, width: int, height: int, mode: str = "detail") -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
        page.goto(url)
        # Wait for the first classified window (the model may still be loading), then let data pile up.
        page.wait_for_function("document.querySelector('#now-card').dataset.state !== 'idle'",
                               timeout=180_000)
        page.wait_for_timeout(seconds * 1000)
        if mode == "grid":
            page.click("#mode-grid")
            page.wait_for_timeout(3000)
        # Shoot between two windows, after the bar chart's transition has settled.
        page.evaluate("""() => new Promise((done) => window.genreMonitor.socket.once('prediction', () => done()))""")
        page.wait_for_timeout(700)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--mode", choices=("detail", "grid"), default="detail", help="dashboard view to capture")
    parser.add_argument("--segment-min", type=float, default=6.0, help="segment min_duration (s) for the shot")
    parser.add_argument("--seconds", type=float, default=45.0, help="live data to wait for after the first window")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--url", help="use an already running server instead of starting one")
    parser.add_argument("--talk", action="store_true", help="one source: music, talk, music (needs espeak-ng)")
    args = parser.parse_args()

    proc = None
    url = args.url
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        workdir = tempfile.mkdtemp(prefix="gm-shot-")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        demo = ROOT / "media" / "demo"
        second = ",".join(str(demo / n) for n in ("03-city-blues.ogg", "05-spunky-race.ogg"))
        sources = (["--source", f"file:{talk_file(workdir)}"] if args.talk
                   else ["--source", f"file:{second}", "--source", "demo"])
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "serve", *sources,
             "--host", "127.0.0.1", "--port", str(port), "--data-dir", workdir], cwd=ROOT, env=env)
    try:
        wait_until_up(url, proc)
        if args.segment_min:
            put_json(url + "/api/monitoring", {"segments": {"min_duration": args.segment_min}})
        capture(url, args.out, args.seconds, args.width, args.height, args.mode)
    finally:
        if proc is not None:
            stop_process(proc, grace=10)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
