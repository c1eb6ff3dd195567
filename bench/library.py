"""The library command's speed: fast analysis of 4-minute tracks on all cores (decoding included),
a re-run over 1,000 unchanged files, and peak memory for a 4-minute track against a 3-hour mix.

``python -m bench.library [--tracks N]`` prints one JSON object; ``make bench`` runs it as the
``library`` section. The fast-vs-full agreement on real music is ``bench/library_agreement.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import DEMO_DIR, BenchError, proc_status

TRACK_SECONDS = 240.0
MIX_SECONDS = 3 * 3600.0
REUSE_FILES = 1000


def make_tracks(folder: Path, n: int, seconds: float = TRACK_SECONDS) -> list[Path]:
    """``n`` different MP3 tracks of ``seconds``: the demo tracks end to end, each from another start."""
    demo = sorted(DEMO_DIR.glob("*.ogg"))
    if not demo:
        raise BenchError(f"no demo tracks in {DEMO_DIR}")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        order = demo[i % len(demo):] + demo[:i % len(demo)]
        path = folder / f"track-{i:03d}.mp3"
        inputs = [x for p in order for x in ("-i", str(p))]
        graph = "".join(f"[{k}:a]aformat=sample_rates=44100:channel_layouts=stereo[a{k}];" for k in range(len(order)))
        graph += "".join(f"[a{k}]" for k in range(len(order))) + f"concat=n={len(order)}:v=0:a=1,aloop=loop=-1:size=2e9[o]"
        subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[o]",
                        "-ss", f"{i * 1.7:.1f}", "-t", str(seconds), "-c:a", "libmp3lame", "-b:a", "192k", str(path)],
                       check=True)
        out.append(path)
    return out


def speed(work: Path, n: int, jobs: int | None = None) -> dict:
    from server.library.runner import default_jobs, run_library
    from server.library.store import LibraryStore
    from server.model.registry import load_model

    tracks = make_tracks(work / "tracks", n)
    store = LibraryStore(work / "speed.sqlite")
    model = load_model(None)
    stamps: list[float] = []
    cpu0 = _cpu_s()
    t0 = time.monotonic()
    run = run_library([str(work / "tracks")], store, model, jobs=jobs,
                      on_progress=lambda done, total: stamps.append(time.monotonic()))
    wall = time.monotonic() - t0
    cpu = _cpu_s() - cpu0
    store.close()
    audio = sum(r["duration"] for r in run.results)
    # After the first result the pool is started and the model loaded: the rate a long run keeps.
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 and stamps[-1] > stamps[0] else None
    return {"tracks": len(tracks), "analysed": run.analysed, "track_seconds": TRACK_SECONDS, "format": "mp3 192k stereo 44.1 kHz",
            "jobs": jobs or default_jobs(), "wall_s": round(wall, 2), "x_real_time": round(audio / wall, 1),
            "tracks_per_s": round(len(tracks) / wall, 3),
            "steady_tracks_per_s": round(steady, 3) if steady else None,
            "steady_x_real_time": round(steady * TRACK_SECONDS, 1) if steady else None,
            # CPU time of this process and its workers (pool start-up included): what the analysis
            # costs whatever else the machine runs; on 2 free cores it runs at 2x this rate.
            "cpu_s_per_track": round(cpu / len(tracks), 3),
            "x_real_time_per_cpu_core": round(audio / cpu, 1) if cpu else None}


def _cpu_s() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def reuse(work: Path, n: int = REUSE_FILES) -> dict:
    """Results stored for ``n`` files (as an earlier run leaves them), then a timed re-run: all reused."""
    import numpy as np
    import soundfile as sf

    from server.library.runner import run_library
    from server.library.store import LibraryStore
    from server.model.registry import load_model

    folder = work / "many"
    for i in range(n):
        sub = folder / f"{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        sf.write(sub / f"{i:04d}.wav", np.full(800, (i + 1) / (2 * n), np.float32), 8000)
    store = LibraryStore(work / "reuse.sqlite")
    model = load_model(None)
    for path in sorted(folder.rglob("*.wav")):  # what the first run stores, without its analysis
        store.put(store.key_of(str(path)), model.name, {"genre": "jazz", "confidence": 0.9, "runner_up": "blues",
                  "uncertain": False, "content": "music", "tempo": 120.0, "duration": 0.1, "mode": "fast"})
    store.close()
    store = LibraryStore(work / "reuse.sqlite")
    t0 = time.monotonic()
    run = run_library([str(folder)], store, model)
    wall = time.monotonic() - t0
    store.close()
    if run.reused != n:
        raise BenchError(f"re-run reused {run.reused} of {n} files")
    return {"files": n, "rerun_s": round(wall, 3), "reused": run.reused}


def _peak_rss_subprocess(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.library", "--memory-of", str(path)], capture_output=True,
                         text=True, timeout=1800, cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        raise BenchError(out.stderr.strip()[-500:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(work: Path) -> dict:
    short = make_tracks(work / "mem", 1)[0]
    mix = work / "mem" / "mix-3h.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(short), "-t", str(MIX_SECONDS),
                    "-c", "copy", str(mix)], check=True)
    return {"track_4min": _peak_rss_subprocess(short), "mix_3h": _peak_rss_subprocess(mix)}


def _memory_of(path: str) -> dict:
    """Peak RSS of a fresh process that analyses ``path`` (fast), after the model is warm."""
    os.environ["GENRE_MONITOR_THREADS"] = "1"
    from server.library.analysis import analyse_fast
    from server.model.registry import load_model

    model = load_model(None)
    analyse_fast(str(DEMO_DIR / "01-heroes-rite.ogg"), model)
    warm = proc_status().get("VmHWM")
    t0, c0 = time.monotonic(), time.process_time()
    r = analyse_fast(path, model)
    # CPU seconds of one track on one core, warm: what a free core spends, whatever the machine's load.
    cpu = time.process_time() - c0
    return {"duration_s": r["duration"], "seconds": round(time.monotonic() - t0, 2), "cpu_s": round(cpu, 3),
            "x_real_time_per_core": round(r["duration"] / cpu, 1), "peak_rss_mb_warm": warm,
            "peak_rss_mb": proc_status().get("VmHWM")}


def measure(tracks: int = 12) -> dict:
    with tempfile.TemporaryDirectory(prefix="gm-bench-library-") as tmp:
        work = Path(tmp)
        return {"speed": speed(work, tracks), "reuse": reuse(work), "memory": memory(work),
                "load_avg": os.getloadavg()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.library", description=__doc__)
    ap.add_argument("--tracks", type=int, default=12)
    ap.add_argument("--only", default="speed,reuse,memory")
    ap.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_of:
        print(json.dumps(_memory_of(args.memory_of)))
        return 0
    parts = {"speed": lambda w: speed(w, args.tracks), "reuse": reuse, "memory": memory}
    out = {}
    with tempfile.TemporaryDirectory(prefix="gm-bench-library-") as tmp:
        for name in args.only.split(","):
            out[name] = parts[name](Path(tmp))
            print(f"[library] {name}: {out[name]}", file=sys.stderr, flush=True)
    out["load_avg"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
