"""A tiny run of every benchmark code path (python -m bench): structure and sanity, no timing thresholds."""

import json
import os

import numpy as np
import pytest

from bench import __main__ as bench_main
from bench import flops, live, server, soak, tempo, throughput, window_cost
from bench.common import BenchError, stats_ms, write_files
from tests.support.tolerance import DECISION_TOL, MUSICNN_TERMS, f32_tol

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_files(tmp_path_factory.mktemp("bench"), 2, 5.0)


def test_stats_and_flops():
    s = stats_ms([0.001, 0.002, 0.003])
    assert s["median_ms"] == 2.0 and s["p95_ms"] >= s["median_ms"] and s["n"] == 3
    with pytest.raises(BenchError):
        stats_ms([])
    f = flops.model_flops(["MSD_musicnn", "MTT_musicnn"])
    # Both networks share one architecture: ~2.8 GFLOP each, mostly the timbral convolutions.
    assert f["per_backbone"]["MSD_musicnn"] == f["per_backbone"]["MTT_musicnn"]
    assert 2e9 < f["per_backbone"]["MSD_musicnn"] < 4e9 and f["per_window"] == 2 * f["per_backbone"]["MSD_musicnn"]
    assert 0.7 < f["timbral_per_window"] / f["per_window"] < 0.9
    peak = flops.peak_flops(n=256, repeats=2)
    assert peak["gflops_best"] > 0 and not peak["errors"]
    # The peak is the best of every kernel measured, numpy's without the OpenBLAS overrides among them.
    assert set(peak["rates"]) == {"numpy matmul", "numpy_clean matmul", "onnxruntime conv", "onnxruntime matmul"}
    assert peak["gflops_best"] == max(peak["rates"].values()) and peak["source"] in peak["rates"]
    assert isinstance(peak["isa"]["summary"], str)


def test_cpu_isa_and_clean_numpy(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni "
                    "avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    isa = flops.cpu_isa(str(info))
    assert isa["model"] == "AMD EPYC" and isa["flags"] == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert isa["summary"] == "AVX2, FMA, AVX-512F, AVX-512 VNNI, AVX-512 BF16"
    assert flops.cpu_isa(str(tmp_path / "missing"))["summary"] == "unknown"
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    clean = flops.numpy_peak_clean(n=128, repeats=1)
    assert clean["removed_env"] == ["OPENBLAS_CORETYPE"] and clean["gflops_best"] > 0


def test_table_never_prints_more_than_the_peak():
    fpw = 5.6e9
    r = {"flops": {"per_window": fpw, "timbral_per_window": 0.8 * fpw,
                   "peak": {"gflops_best": 100.0, "source": "numpy matmul", "rates": {"numpy matmul": 100.0},
                            "isa": {"summary": "AVX2"}}},
         "window": {"ours": {"b1": {p: {"median_ms": 28.0, "p95_ms": 30.0} for p in ("total", "model", "features")}},
                    "original": {}, "ratio": {}}}
    text = bench_main.table(r)  # 5.6 GFLOP in 28 ms = 200 GFLOP/s, twice the "peak"
    assert "measured peak" in text and "peak measurement too low" in text and "200% of peak" not in text
    assert "AVX2" in text
    r["window"]["ours"]["b1"] = {p: {"median_ms": 112.0, "p95_ms": 120.0} for p in ("total", "model", "features")}
    assert "50% of peak" in bench_main.table(r)


def test_max_sources_row_states_the_ceiling_at_the_peaks():
    fpw, tpw = 5.0e9, 4.0e9
    r = {"flops": {"per_window": fpw, "timbral_per_window": tpw, "peak": {"gflops_best": 100.0}},
         "window": {"ours": {}, "original": {}, "ratio": {}, "live_frames": {"computed_fraction": 0.25}},
         "max_sources": {"seconds": 60.0, "max_sources": 7, "first_failing": 9, "exact": False}}
    # A live window: a quarter of the timbral work and all the rest, 2 GFLOP at 100 GFLOP/s = 20 ms.
    assert "at most 50 at the measured peaks" in bench_main.table(r)
    r["flops"]["peak"]["gflops_best"] = 50.0
    assert "at most 25 at the measured peaks" in bench_main.table(r)


def test_window_cost_side_by_side(model):
    original = os.path.exists(window_cost.GOLDEN_PY)  # the original stack is optional in CI
    r = window_cost.measure(model, repeats=2, batches=(1, 2), rounds=1, original=original)
    for b in ("live", "b1", "b2"):
        for part in ("total", "features", "model"):
            assert r["ours"][b][part]["median_ms"] > 0
        if original:
            assert r["ratio"][b]["total"] > 0
    if original:
        assert r["original"]["b1"]["total"]["median_ms"] > 0
    # Live windows after the first compute only their new frames' front-end (about a third).
    frames = r["live_frames"]
    assert frames["frames_reused"] > 0 and 0.2 < frames["computed_fraction"] < 0.8
    if original:
        a = r["agreement"]
        assert a["max_abs_diff_tags"] < DECISION_TOL
        assert a["max_abs_diff_embedding"] <= f32_tol(a["scale_embedding"], MUSICNN_TERMS)


def test_throughput_and_live(model, files):
    t = throughput.measure(model, files[:1])
    assert t["audio_s"] == pytest.approx(5.0, abs=0.1) and t["x_realtime"] > 0
    r = live.run_sources(model, files, 2, seconds=2.0, warmup=3.5)
    assert r["sources"] == 2 and r["cpu_per_audio_s"] > 0 and r["windows"] > 0 and r["skipped"] >= 0
    m = live.max_sources(model, files, seconds=2.0, hint_ok=1, hint_fail=3, max_trials=1)
    assert len(m["trials"]) == 1 and m["max_sources"] in (0, 1) and m["trials"][0]["sources"] == 1


def test_server_latency_and_startup(files):
    r = server.measure(files[0], seconds=2.0)
    assert 0 < r["startup_http_s"] <= r["startup_first_prediction_s"]
    assert r["latency"]["n"] >= 1 and r["peak_rss_mb_one_source"] > 100


def test_soak_subprocess(files):
    r = soak.run_subprocess(files[0], minutes=0.15)
    assert r["windows"] >= 5 and r["skipped"] == 0 and r["rss_mb_end"] > 0 and r["x_realtime"] > 0


def test_table_and_cli_output(tmp_path, monkeypatch):
    out = tmp_path / "results.json"
    assert bench_main.main(["--quick", "--only", "flops,throughput", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["flops"]["per_window"] > 0 and results["throughput"]["x_realtime"] > 0
    text = bench_main.table(results)
    assert "GFLOP" in text and "real time" in text
    assert bench_main.main(["--only", "nonsense", "--out", str(out)]) == 2
    assert np.isfinite(results["flops"]["peak"]["gflops_best"])


def test_content_decision_cost(model):
    from bench import content_cost

    r = content_cost.measure(model, repeats=5)
    assert r["installed"] is True
    assert 0 < r["added_ms"]["median_ms"] < r["window_ms"]["median_ms"]
    assert 0 < r["share_of_window"] < 1
    assert "content decision added per window" in bench_main.table({"content": r})


def test_tempo_cost_and_counting():
    c = tempo.cost(repeats=1)
    assert c["x_realtime_30s"] > 0 and c["live_window"]["n"] >= 20
    rows = [("pop.1", True, True), ("pop.2", False, True), ("jazz.1", False, False)]
    s = tempo.summary(rows)
    assert (s["acc1"], s["acc2"], s["balanced_acc1"], s["balanced_acc2"]) == (0.333, 0.667, 0.25, 0.5)
    assert tempo.within(104, 100) and not tempo.within(105, 100) and tempo.within(61, 120, tempo.OCTAVES)


def test_long_audio_bench_measures_each_length():
    from bench import long_audio

    r = long_audio.measure([0.1, 0.2])
    assert [run["minutes"] for run in r["runs"]] == [0.1, 0.2]
    assert all(run["peak_rss_mb"] > 50 and run["seconds"] > 0 for run in r["runs"])
    assert r["peak_growth_mb_per_hour"] is not None


def test_dashboards_row_says_who_got_every_prediction():
    r = {"dashboards": {"clients": 200, "seconds": 60.0, "predictions": 61, "clients_with_every_prediction": 198,
                        "missed_most": 2, "latency": {"median_ms": 41.0, "p95_ms": 88.5, "n": 12000},
                        "first_client": {"median_ms": 30.0, "p95_ms": 52.5, "n": 61},
                        "fan_out": {"median_ms": 9.5, "p95_ms": 31.0, "n": 12000}}}
    text = bench_main.table(r)
    assert "200 dashboards (WebSocket), 60 s" in text and "41.0 / 88.5" in text
    assert "198 of 200 got all 61 predictions" in text and "p95 < 100 ms" in text
    assert "fan-out to the other 199" in text and "30.0 / 52.5; 9.5 / 31.0" in text


@pytest.mark.slow
def test_dashboards_bench_watchers_get_every_prediction():
    """The bench's bare Socket.IO watchers on a real server: connected, answering pings, decoding predictions."""
    from bench import dashboards

    r = dashboards.measure(clients=3, seconds=6.0)
    assert r["clients"] == 3 and r["predictions"] >= 3
    assert r["clients_with_every_prediction"] == 3 and r["missed_most"] == 0
    assert r["latency"]["n"] == 3 * r["predictions"] and r["fan_out"]["median_ms"] >= 0


def test_library_bench_paths(tmp_path):
    from bench import library

    sp = library.speed(tmp_path, 2)
    assert sp["analysed"] == 2 and sp["x_real_time"] > 0 and sp["cpu_s_per_track"] > 0
    ru = library.reuse(tmp_path / "r", n=20)
    assert ru["reused"] == 20
    assert library.make_tracks(tmp_path / "t", 1, seconds=5.0)[0].stat().st_size > 0
