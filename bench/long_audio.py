"""Peak memory of ``run.py classify`` against the file's length: it must not grow with it.

Each length is a generated file (ffmpeg: a tone with pink noise, 22.05 kHz FLAC), classified at
hop 3 s by a fresh ``run.py classify`` whose peak RSS is read from ``getrusage(RUSAGE_CHILDREN)``
of a Python process that runs nothing else. Run alone as
``python -m bench.long_audio --minutes 10,60,180``; prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from .common import ROOT, BenchError

SAMPLE_RATE = 22050
HOP_S = 3.0

_MEASURE = ("import json, resource, subprocess, sys, time\n"
            "t0 = time.monotonic()\n"
            "r = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True)\n"
            "print(json.dumps({'rc': r.returncode, 'stderr': r.stderr[-2000:], 'seconds': time.monotonic() - t0,\n"
            "                  'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")


def make_file(folder: str, minutes: float) -> str:
    """A FLAC of ``minutes``: a 440-Hz tone under pink noise, so every block has to be decoded."""
    if shutil.which("ffmpeg") is None:
        raise BenchError("ffmpeg is needed to generate the long files")
    path = os.path.join(folder, f"long-{minutes:g}min.flac")
    src = (f"sine=frequency=440:sample_rate={SAMPLE_RATE}[a];anoisesrc=color=pink:amplitude=0.05:"
           f"sample_rate={SAMPLE_RATE}[b];[a][b]amix=inputs=2")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-filter_complex", src, "-t", str(minutes * 60),
                    "-ac", "1", "-c:a", "flac", path], check=True, timeout=3600)
    return path


def classify_peak(path: str, hop_s: float = HOP_S) -> dict:
    """``{peak_rss_mb, seconds}`` of ``run.py classify path``, run in a fresh process."""
    cmd = [sys.executable, str(ROOT / "run.py"), "classify", path, "--hop", str(hop_s), "--json"]
    out = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(cmd)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    r = json.loads(out.stdout)
    if r["rc"] != 0:
        raise BenchError(f"classify of {os.path.basename(path)} failed: {r['stderr']}")
    return {"peak_rss_mb": round(r["maxrss_kb"] / 1024, 1), "seconds": round(r["seconds"], 1)}


def measure(minutes_list=(10.0, 60.0, 180.0)) -> dict:
    """Peak RSS per length, and its growth per added hour between the two longest files (the
    shortest also shows the model's own start-up: its first batches grow onnxruntime's arenas)."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="gm-long-") as folder:
        for minutes in minutes_list:
            path = make_file(folder, minutes)
            runs.append({"minutes": minutes, "file_mb": round(os.path.getsize(path) / 2 ** 20, 1),
                         **classify_peak(path)})
            os.unlink(path)
    first, last = runs[-2] if len(runs) > 1 else runs[0], runs[-1]
    hours = (last["minutes"] - first["minutes"]) / 60.0
    growth = round((last["peak_rss_mb"] - first["peak_rss_mb"]) / hours, 1) if hours > 0 else None
    return {"hop_s": HOP_S, "runs": runs, "peak_growth_mb_per_hour": growth,
            "load_avg": [round(x, 2) for x in os.getloadavg()], "measured": time.strftime("%Y-%m-%d %H:%M:%S")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.long_audio", description=__doc__)
    ap.add_argument("--minutes", default="10,60,180", help="file lengths in minutes, comma-separated")
    args = ap.parse_args(argv)
    print(json.dumps(measure([float(m) for m in args.minutes.split(",") if m.strip()])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
