"""How often the fast library analysis decides a track as the whole-track analysis does, on real music.

``python -m bench.library_agreement DATA [--out FILE]`` where ``DATA`` holds collections laid out as
``<collection>/<genre>/<clip>`` (the research data: gtzan-mini, gtzan-more, emotify). Two sets:

- the 30-s clips as they are;
- longer tracks made by joining clips of one genre and one collection end to end (8 clips: 4 min;
  fewer where a genre has fewer). A real track is usually more uniform than clips of several artists
  joined, so this set is, if anything, harder for a few windows than real tracks.

Both analyses run through ``run_library`` (a process pool on all cores), each into its own store;
a decision is the genre, or null when the track is not music.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

COLLECTIONS = ("gtzan-mini", "gtzan-more", "emotify")
AUDIO = (".flac", ".wav", ".ogg", ".opus", ".mp3")
CLIPS_PER_TRACK = 8


def clips(data: Path, collections=COLLECTIONS) -> dict[tuple[str, str], list[Path]]:
    out = defaultdict(list)
    for coll in collections:
        for genre_dir in sorted((data / coll).glob("*")):
            if genre_dir.is_dir():
                out[(coll, genre_dir.name)] = sorted(p for p in genre_dir.iterdir() if p.suffix.lower() in AUDIO)
    return out


def join(parts: list[Path], out: Path) -> None:
    """Clips end to end as one FLAC at 22.05 kHz mono (lossless, seekable)."""
    inputs = [x for p in parts for x in ("-i", str(p))]
    fmt = "".join(f"[{i}:a]aformat=sample_fmts=fltp:sample_rates=22050:channel_layouts=mono[a{i}];"
                  for i in range(len(parts)))
    graph = fmt + "".join(f"[a{i}]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=0:a=1[out]"
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]",
                    "-c:a", "flac", "-sample_fmt", "s16", str(out)], check=True)


def agreement(rows_fast: list[dict], rows_full: list[dict]) -> dict:
    full = {r["path"]: r for r in rows_full}
    pairs = [(f, full[f["path"]]) for f in rows_fast if f["path"] in full]
    same = [a["genre"] == b["genre"] for a, b in pairs]
    return {"tracks": len(pairs), "same_decision": sum(same),
            "agreement": round(sum(same) / len(pairs), 4) if pairs else None,
            "audio_hours": round(sum(b["duration"] for _a, b in pairs) / 3600, 2),
            "differ": [{"path": os.path.basename(a["path"]), "fast": a["genre"], "fast_conf": a["confidence"],
                        "full": b["genre"], "full_conf": b["confidence"], "full_uncertain": b["uncertain"]}
                       for (a, b), s in zip(pairs, same) if not s]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.library_agreement", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="folder holding gtzan-mini, gtzan-more, emotify")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "library_agreement.json"))
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--sets", default="long,clips", help="which sets: long, clips or both")
    ap.add_argument("--collections", default=",".join(COLLECTIONS))
    args = ap.parse_args(argv)
    from server.library.runner import run_library
    from server.library.store import LibraryStore
    from server.model.registry import load_model

    data = Path(args.data)
    groups = clips(data, [c for c in args.collections.split(",") if c])
    work = Path(tempfile.mkdtemp(prefix="gm-agree-"))
    (work / "clips").mkdir()
    (work / "long").mkdir()
    for (coll, genre), paths in groups.items():
        for p in paths:  # links: the clips stay where they are
            (work / "clips" / f"{coll}--{genre}--{p.name}").symlink_to(p)
        for i in range(0, len(paths) - CLIPS_PER_TRACK // 2 + 1, CLIPS_PER_TRACK) if "long" in args.sets else ():
            join(paths[i:i + CLIPS_PER_TRACK], work / "long" / f"{coll}--{genre}--{i // CLIPS_PER_TRACK:02d}.flac")
    model = load_model(None)
    result = {"model": model.name, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "sets": {},
              "collections": args.collections}
    for name in [s for s in args.sets.split(",") if s]:
        runs = {}
        for full in (False, True):
            store = LibraryStore(work / f"{name}-{'full' if full else 'fast'}.sqlite")
            t0 = time.monotonic()
            runs[full] = run_library([str(work / name)], store, model, full=full, jobs=args.jobs)
            store.close()
            print(f"[agreement] {name} {'full' if full else 'fast'}: {len(runs[full].results)} tracks in "
                  f"{time.monotonic() - t0:.0f} s ({runs[full].summary()['speed_x_real_time']}x real time)",
                  file=sys.stderr, flush=True)
        a = agreement(runs[False].results, runs[True].results)
        a["fast_x_real_time"] = runs[False].summary()["speed_x_real_time"]
        a["full_x_real_time"] = runs[True].summary()["speed_x_real_time"]
        result["sets"][name] = a
        print(f"[agreement] {name}: {a['same_decision']}/{a['tracks']} = {a['agreement']}", file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "differ"} for k, v in result["sets"].items()},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
