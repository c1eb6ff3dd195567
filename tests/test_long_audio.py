"""Hours-long audio in bounded memory: classified by ``run.py classify`` and uploaded to and played
by a real server, each file generated here by ffmpeg.

Peak memory is a functional limit here (a file must not cost memory in proportion to its
length), with generous margins; speed is measured in ``bench/long_audio.py``, never here.
"""

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.web import live_server
from tests.test_upload_quota import post_upload

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")]

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
HOURS = 3


def generate(path: Path, source: str, seconds: float, *codec: str) -> Path:
    """A file of ``seconds`` from an ffmpeg lavfi ``source`` (e.g. ``sine=frequency=440:sample_rate=8000``)."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-t", str(seconds),
                    "-ac", "1", *codec, str(path)], check=True, timeout=600)
    return path


def peak_rss_of(cmd: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``cmd`` from a fresh Python whose only child it is: ``(result, peak RSS in bytes)``."""
    probe = ("import json, resource, subprocess, sys\n"
             "r = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True)\n"
             "print(json.dumps([r.returncode, r.stdout, r.stderr,"
             " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))\n")
    out = subprocess.run([sys.executable, "-c", probe, json.dumps(cmd)], cwd=ROOT, capture_output=True,
                         text=True, timeout=timeout, check=True)
    rc, stdout, stderr, maxrss_kb = json.loads(out.stdout)
    return subprocess.CompletedProcess(cmd, rc, stdout, stderr), maxrss_kb * 1024


@pytest.mark.timeout(2400)  # 3,600 windows of the real model: minutes on a busy 2-core machine
def test_classify_of_a_three_hour_file_stays_under_600_mb(tmp_path):
    # A tone at 8 kHz: small to store and quick to decode, 3 h of windows to classify.
    path = generate(tmp_path / "day.flac", "sine=frequency=440:sample_rate=8000", HOURS * 3600, "-c:a", "flac")
    result, peak = peak_rss_of([sys.executable, "run.py", "classify", str(path), "--hop", "3", "--json"],
                               timeout=2300)
    print(f"classify of a {HOURS}-h file: peak RSS {peak / MB:.0f} MB")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["duration"] == pytest.approx(HOURS * 3600, abs=1)
    assert len(answer["timeline"]) == (HOURS * 3600 * 16000 - 48128) // 48000 + 1
    # Whole-file decoding needed 1.25 GB per hour of audio; streamed, it is the model's own.
    assert peak < 600 * MB, f"peak RSS {peak / MB:.0f} MB"


def _vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _json(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.loads(res.read())


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
def test_a_three_hour_upload_is_checked_and_played_in_bounded_memory(tmp_path):
    # Silent FLAC at 44.1 kHz: 1.5 MB on disk, 1.9 GB of samples when decoded whole.
    path = generate(tmp_path / "silence.flac", "anullsrc=r=44100:cl=mono", HOURS * 3600, "-c:a", "flac")
    with live_server() as srv:
        idle_peak = _settled_peak(srv)
        status, answer = post_upload(srv.url, str(path), "a day of silence.flac")
        assert status == 200, answer
        assert answer["duration"] == pytest.approx(HOURS * 3600, abs=1)
        started = _json(srv.url + "/api/sources", {"kind": "upload", "upload_id": answer["upload_id"]})
        played = _wait_for_windows(srv, started["id"], 10)
        grown = _vm(srv.proc.pid, "VmHWM") - idle_peak
        print(f"upload + {played['position']:.0f} s played ({played['windows']} windows) of a {HOURS}-h file: "
              f"peak RSS +{grown / MB:.0f} MB over the idle server's {idle_peak / MB:.0f} MB")
        assert grown < 100 * MB, f"+{grown / MB:.0f} MB"


def _source(srv, source_id: str) -> dict:
    return {s["id"]: s for s in _json(srv.url + "/api/sources")["sources"]}[source_id]


def _wait_for_windows(srv, source_id: str, windows: int, timeout: float = 120.0) -> dict:
    """The source once it has ``windows`` classified windows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _source(srv, source_id)
        if state["windows"] >= windows:
            return state
        time.sleep(0.5)
    raise AssertionError(f"{source_id}: {state['windows']} windows after {timeout:.0f} s:\n{srv.log()}")


def _settled_peak(srv) -> int:
    """The idle server's peak RSS once its demo source is classified and the peak stays put for 3 s."""
    demo = _json(srv.url + "/api/sources")["sources"][0]["id"]
    _wait_for_windows(srv, demo, 5)
    peak, still, deadline = _vm(srv.proc.pid, "VmHWM"), 0, time.monotonic() + 60
    while still < 6 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = _vm(srv.proc.pid, "VmHWM")
        still = still + 1 if now == peak else 0
        peak = now
    return peak
