"""``python -m bench``: measure everything side by side, print a table, write bench/results.json."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback

from .common import ROOT, BenchError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before run() first imports TensorFlow

SECTIONS = ("flops", "window", "window_float", "content", "tempo", "throughput", "live", "max_sources", "server",
            "dashboards", "soak", "long_audio", "library")
FULL = dict(repeats=30, rounds=3, files=8, live_seconds=20.0, max_seconds=60.0, max_trials=4,
            server_seconds=30.0, dashboards=200, dashboards_seconds=60.0, soak_minutes=20.0,
            long_minutes=(10.0, 60.0, 180.0))
QUICK = dict(repeats=6, rounds=2, files=2, live_seconds=5.0, max_seconds=10.0, max_trials=2,
             server_seconds=8.0, dashboards=20, dashboards_seconds=10.0, soak_minutes=2.0, long_minutes=(2.0, 10.0))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="shorter runs (about 3 minutes)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    ap.add_argument("--live-sources", default="1,8,32", help="source counts for the live CPU runs")
    ap.add_argument("--max-sources-seconds", type=float, help="length of each max-sources trial (default 60)")
    ap.add_argument("--soak-minutes", type=float, help="minutes of audio for the memory soak (default 20)")
    ap.add_argument("--no-original", action="store_true", help="skip the original extractor (no golden venv)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    return ap.parse_args(argv)


def run(args) -> dict:
    cfg = dict(QUICK if args.quick else FULL)
    if args.max_sources_seconds:
        cfg["max_seconds"] = args.max_sources_seconds
    if args.soak_minutes:
        cfg["soak_minutes"] = args.soak_minutes
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        raise BenchError(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")

    from server.model import fast, precision
    from server.model.fast import backend_name, default_threads
    from server.model.registry import load_model

    from . import content_cost, dashboards, flops, live, long_audio, server, soak, tempo, throughput, window_cost
    from .common import write_files

    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick, "config": cfg,
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "python": platform.python_version(), "load_avg_start": os.getloadavg()},
               "backend": backend_name(), "threads": default_threads(), "errors": {}}
    work = tempfile.mkdtemp(prefix="gm-bench-")
    files = write_files(work, cfg["files"], 30.0)
    model = load_model(None)
    backbones = list(getattr(model, "backbones", ["MSD_musicnn", "MTT_musicnn"]))
    results["model"] = {"name": model.name, "backbones": backbones}
    # As the server does at start-up (GENRE_MONITOR_PRECISION as set): every later section runs in it.
    results["precision"] = precision.select(model)

    def section(name, fn):
        if name not in only:
            return
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.time()
        try:
            results[name] = fn()
        except Exception as exc:  # one failed measurement must not lose the others
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        print(f"[bench] {name} done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)

    section("flops", lambda: {**flops.model_flops(backbones), "peak": flops.peak_flops()})
    section("window", lambda: window_cost.measure(model, repeats=cfg["repeats"], rounds=cfg["rounds"],
                                                  original=not args.no_original))
    def window_float():  # the same measurement in float32, when the chosen precision is int8
        with fast.precision("float"):
            return window_cost.measure(model, repeats=cfg["repeats"], rounds=cfg["rounds"], original=False)

    if results["precision"]["precision"] != "float":
        section("window_float", window_float)
    section("content", lambda: content_cost.measure(model, repeats=cfg["repeats"] * 10))
    section("tempo", tempo.measure)
    section("throughput", lambda: throughput.measure(model, files))
    counts = [int(n) for n in args.live_sources.split(",") if n.strip()]
    section("live", lambda: [live.run_sources(model, files, n, cfg["live_seconds"]) for n in counts])

    def search():
        runs = results.get("live") or []
        ok = [r["sources"] for r in runs if r["skipped"] == 0 and not r["errors"]]
        bad = [r["sources"] for r in runs if r["skipped"] > 0 or r["errors"]]
        return live.max_sources(model, files, cfg["max_seconds"], hint_ok=max(ok, default=1),
                                hint_fail=min(bad, default=None), max_trials=cfg["max_trials"])

    section("max_sources", search)
    section("server", lambda: server.measure(files[0], seconds=cfg["server_seconds"]))
    section("dashboards", lambda: dashboards.measure(cfg["dashboards"], cfg["dashboards_seconds"]))
    section("soak", lambda: soak.run_subprocess(files[0], cfg["soak_minutes"]))
    section("long_audio", lambda: long_audio.measure(cfg["long_minutes"]))
    from . import library

    section("library", lambda: library.measure(tracks=4 if args.quick else 12))
    results["machine"]["load_avg_end"] = os.getloadavg()
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return results


def _ms(d, key="median_ms"):
    return f"{d[key]:.1f}" if d and d.get(key) is not None else "-"


def table(r: dict) -> str:
    """The human-readable summary of a results dict."""
    rows = []
    add = lambda *cols: rows.append(cols)
    from .flops import floor_ms

    pk = (r.get("flops") or {}).get("peak") or {}
    peak = pk.get("gflops_best")
    fpw = (r.get("flops") or {}).get("per_window")
    tpw = (r.get("flops") or {}).get("timbral_per_window") or 0
    chosen = (r.get("precision") or {}).get("precision", "float")

    def floor_at(computed=1.0, precision=chosen):
        """The least ms a window can take at the peaks when only ``computed`` of its timbral frames are computed."""
        return floor_ms(tpw * computed, fpw - tpw, pk, precision) if fpw else None

    def limit(ms, computed=1.0, precision=chosen):
        """The measured time against the floor at the peaks; live windows compute only ``computed``
        of their timbral frames."""
        floor = floor_at(computed, precision)
        if not (floor and ms):
            return "-"
        share = 100 * floor / ms
        if share > 100:  # a limit that is exceeded is not a limit: the peak was measured too low
            return f"faster than the measured peak ({share:.0f}%): peak measurement too low"
        return f"{share:.0f}% of peak"

    # Live windows compute only some timbral frames: their FLOPs are fewer.
    frames = (r.get("window") or {}).get("live_frames")
    computed = frames["computed_fraction"] if frames else 1.0
    live_fpw = fpw - tpw * (1 - computed) if fpw else None

    p = r.get("precision")
    if p:
        check = p.get("check") or {}
        add("timbral front-end precision (start-up check)", p["precision"],
            "", p.get("reason", ""), f"decided windows agree {100 * check['decided_agreement']:.1f}%, "
            f"|d prob| {check['max_prob_diff']}, |d tag| {check['max_tag_diff']}" if check else "")
    if "flops" in r:
        add("model FLOPs per window (all backbones)", f"{fpw / 1e9:.2f} GFLOP", "", "", "")
        pk = r["flops"].get("peak") or {}
        add(f"machine peak (best float32 kernel{': ' + pk['source'] if pk.get('source') else ''})",
            f"{peak} GFLOP/s", "", "", "")
        isa = pk.get("isa") or {}
        clean = pk.get("numpy_clean") or {}
        add("  CPU instruction sets", isa.get("summary", "-"), "",
            f"OpenBLAS core {clean['blas_core']}" if clean.get("blas_core") else "", "")
        if pk.get("rates"):
            add("  float32 kernels measured (GFLOP/s)", ", ".join(f"{k} {v}" for k, v in pk["rates"].items()),
                "", f"OPENBLAS_* removed: {', '.join(clean.get('removed_env') or []) or 'none set'}", "")
        if pk.get("int8_gops_best"):
            add("  int8 kernel (QLinearConv, timbral shape)", f"{pk['int8_gops_best']} GOP/s", "", "", "")
        floor = floor_at()
        if floor:
            add(f"  => floor per window at peak ({chosen} timbral)", f"{floor:.1f} ms", "", "", "")
            add("  => max windows/s at peak", f"{1e3 / floor:.1f}", "", "", "")
    w = r.get("window")
    if w:
        for b in ("live", "b1", "b16"):
            if b not in w["ours"]:
                continue
            # The live row is our live path against the original at batch 1.
            ours, orig = w["ours"][b], w["original"].get("b1" if b == "live" else b, {})
            ratio = w["ratio"].get(b, {})
            add("per-window cost live, hop 1 s (median / p95 ms)" if b == "live" else
                f"per-window cost {b} (median / p95 ms)",
                f"{_ms(ours['total'])} / {_ms(ours['total'], 'p95_ms')}",
                f"{_ms(orig.get('total'))} / {_ms(orig.get('total'), 'p95_ms')}" if orig else "-",
                f"{ratio.get('total')}x" if ratio else "-",
                limit(ours["total"]["median_ms"], computed if b == "live" else 1.0))
            if b == "live" and live_fpw:
                add("  live: timbral frames computed (rest reused)", f"{100 * frames['computed_fraction']:.0f}%",
                    "100%", f"{live_fpw / 1e9:.2f} GFLOP per window", "")
            add(f"  networks only {b} (median ms)", _ms(ours["model"]), _ms(orig.get("model")) if orig else "-",
                f"{ratio.get('model')}x" if ratio else "-", "")
            add(f"  features {b} (median ms)", _ms(ours["features"]), _ms(orig.get("features")) if orig else "-",
                "", "")
        wf = r.get("window_float")
        for b in ("live", "b1"):
            if wf and b in wf["ours"] and w["original"].get("b1"):
                ms, orig_ms = wf["ours"][b]["total"]["median_ms"], w["original"]["b1"]["total"]["median_ms"]
                add(f"  the same in float32, {b} (median ms)", _ms(wf["ours"][b]["total"]), _ms(w["original"]["b1"]["total"]),
                    f"{orig_ms / ms:.2f}x", limit(ms, computed if b == "live" else 1.0, "float"))
        if w.get("agreement"):
            a = w["agreement"]
            add("max |ours - original| tags / embedding", f"{a['max_abs_diff_tags']:.1e} / "
                f"{a['max_abs_diff_embedding']:.1e}", "", "", "")
    c = r.get("content")
    if c and c.get("installed"):
        add("content decision added per window (median / p95 ms)",
            f"{c['added_ms']['median_ms']:.3f} / {c['added_ms']['p95_ms']:.3f}", "",
            f"{100 * c['share_of_window']:.2f}% of a window", "")
    tp = r.get("tempo")
    if tp:
        c = tp["cost"]
        add("tempo of a track: 30 s / three 8-s excerpts (median ms)",
            f"{_ms(c['excerpt_30s'])} / {_ms(c['excerpts_3x8s'])}", "", f"{c['x_realtime_30s']}x real time, one core", "")
        add("  live tempo per window, hop 1 s (median / p95 ms)",
            f"{_ms(c['live_window'])} / {_ms(c['live_window'], 'p95_ms')}", "", "", "")
        for name, acc in (tp.get("accuracy") or {}).items():
            for part, label in (("held_out", "held out"), ("test", "test list"), ("all", "all clips")):
                a = acc.get(part)
                if a:
                    add(f"  tempo within 4% / or octave, GTZAN {label}, {name} ({a['clips']} clips)",
                        f"{100 * a['acc1']:.1f}% / {100 * a['acc2']:.1f}%", "",
                        f"genre-balanced {100 * a['balanced_acc1']:.1f}% / {100 * a['balanced_acc2']:.1f}%",
                        "target 75% / 92%")
        if tp.get("accuracy") is None:
            add("  tempo accuracy", "no research data beside the checkout", "", "", "")
    t = r.get("throughput")
    if t:
        add(f"classify throughput ({t['files']} x 30 s files)", f"{t['x_realtime']}x real time", "", "", "")
    for lr in r.get("live") or []:
        add(f"live CPU per source, {lr['sources']} sources (CPU s / audio s)", f"{lr['cpu_per_audio_s']:.3f}",
            "", f"skipped {lr['skipped']}", f"{lr['cpu_cores_used']:.2f} cores busy")
    m = r.get("max_sources")
    if m:
        # Each source brings one live window a second: the live floor bounds the sources any code could carry.
        live_floor = floor_at(computed)
        ceiling = f"; at most {1e3 / live_floor:.0f} at the measured peaks" if live_floor else ""
        add(f"max real-time sources, hop 1 s, {m['seconds']:.0f} s, no skip", str(m["max_sources"]), "",
            f"first failing {m['first_failing']}", ("exact" if m["exact"] else "bounded search") + ceiling)
    s = r.get("server")
    if s:
        add("latency window end -> client (p50 / p95 ms)", f"{_ms(s['latency'])} / {_ms(s['latency'], 'p95_ms')}",
            "", "", "")
        add("start-up: HTTP answer / first prediction (s)",
            f"{s['startup_http_s']} / {s['startup_first_prediction_s']}", "", "", "")
        add("peak RSS, server with one source (MB)", str(s["peak_rss_mb_one_source"]), "", "", "")
    d = r.get("dashboards")
    if d:
        add(f"{d['clients']} dashboards (WebSocket), {d['seconds']:.0f} s: latency p50 / p95 (ms)",
            f"{_ms(d['latency'])} / {_ms(d['latency'], 'p95_ms')}", "",
            f"{d['clients_with_every_prediction']} of {d['clients']} got all {d['predictions']} predictions",
            "p95 < 100 ms")
        add(f"  of which capture -> first dashboard / fan-out to the other {d['clients'] - 1} (p50 / p95 ms)",
            f"{_ms(d['first_client'])} / {_ms(d['first_client'], 'p95_ms')}; "
            f"{_ms(d['fan_out'])} / {_ms(d['fan_out'], 'p95_ms')}", "", "", "")
    k = r.get("soak")
    if k:
        add(f"RSS growth over {k['audio_minutes']:.0f} min of audio (MB)", str(k["rss_growth_mb"]), "",
            f"{k['x_realtime']}x real time", f"peak {k['peak_rss_mb']} MB")
    la = r.get("long_audio")
    if la:
        for run in la["runs"]:
            add(f"classify of a {run['minutes']:g}-min file: peak RSS (MB)", str(run["peak_rss_mb"]), "",
                f"{run['seconds']} s", "")
        add("  classify peak RSS growth per hour of audio (MB)", str(la["peak_growth_mb_per_hour"]), "", "", "")
    lib = r.get("library")
    if lib:
        sp, ru, mem = lib["speed"], lib["reuse"], lib["memory"]
        add(f"library, fast: {sp['tracks']} tracks of {sp['track_seconds'] / 60:.0f} min, {sp['jobs']} processes",
            f"{sp['x_real_time']}x real time", "", f"{sp['tracks_per_s']} tracks/s wall (start-up included)",
            f"{sp['x_real_time_per_cpu_core']}x per CPU core")
        add(f"library, re-run over {ru['files']} unchanged files (s)", str(ru["rerun_s"]), "", "", "")
        add("library, peak RSS fast 4-min track / 3-hour mix (MB)",
            f"{mem['track_4min']['peak_rss_mb']} / {mem['mix_3h']['peak_rss_mb']}", "", "", "")
    header = ("figure", "ours", "original", "ratio / note", "limit")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(5)]
    line = lambda row: "  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)).rstrip()
    out = [line(header), line(["-" * w for w in widths])] + [line(row) for row in rows]
    if r.get("errors"):
        out += [f"ERROR in {k}: {v}" for k, v in r["errors"].items()]
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"backend {results['backend']}, {results['threads']} threads, load average "
          f"{results['machine']['load_avg_start'][0]:.1f} -> {results['machine']['load_avg_end'][0]:.1f}")
    print(table(results))
    print(f"\nwrote {args.out}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
