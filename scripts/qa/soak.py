"""Soak test: minutes of audio through the real engine, faster than real time, with faults.

    python scripts/qa/soak.py --minutes 20            # not part of the test suite

Three lossless file sources (``Engine(fast=True)``: the reader waits for the
worker, so nothing may be skipped) share the audio; a live stream runs beside them:

  clean    no fault                          every window must be classified
  corrupt  NaN/Inf/1e30 bursts in its blocks  every window (repaired) must be classified
  crash    its feature stage raises once      windows before the crash, then the whole
                                              file again after ``restart_source``
  stream   the test radio is cut every ~20 s  windows away from a reconnect must be classified
  race     meanwhile, ``--race`` times: a looping file source gets two REST restarts and a
           DELETE at the same moment; afterwards it must be gone, with no pipeline of it
           still reading (the engine's per-source lifecycle lock)

It compares the expected window grid with the predictions received, prints a
table and exits 1 when anything was lost beyond the windows that overlapped a
fault (or a probability was not finite, or the worker thread died).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from server.audio.decode import decode
from server.audio.resample import resample
from server.config import FIRST_WINDOW_SECONDS, MODEL_SR, N_MELS, WINDOW_FRAMES, WINDOW_SAMPLES
from server.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
# The test helpers are QA code that the package does not ship: they come from this checkout.
sys.path.insert(0, str(ROOT))
from tests.support.http_audio import RadioServer, encode_mp3  # noqa: E402
from tests.support.threads import together  # noqa: E402

SR = 22050
BURST_EVERY_S, BURST_S = 45.0, 0.5      # corrupt source: a 0.5-s burst of garbage every 45 s
CUT_EVERY_S, CUT_S = 20.0, 3.0          # stream: cut for 3 s every 20 s
STREAM_FAULT_SPAN_S = 8.0               # stream seconds after a reconnect counted as faulted (burst + window)
RACE_PAUSE_S = 1.0                      # between restart-race rounds: the live stream must keep up meanwhile


class Collector:
    def __init__(self):
        self.lock = threading.Lock()
        self.preds: dict[str, list[float]] = {}
        self.bad_probs = 0
        self.notices: list[dict] = []

    def on_prediction(self, w):
        with self.lock:
            self.preds.setdefault(w.source, []).append(w.t)
            if not (np.isfinite(w.probs).all() and abs(sum(w.probs) - 1) < 1e-3):
                self.bad_probs += 1

    def on_notice(self, p):
        self.notices.append(p)


def build_audio(seconds: float) -> np.ndarray:
    """The demo playlist at 22.05 kHz, repeated to ``seconds``."""
    parts = []
    for path in sorted((ROOT / "media" / "demo").glob("*.ogg")):
        y, sr = decode(path)
        parts.append(resample(y, sr, SR))
    y = np.concatenate(parts)
    return np.tile(y, math.ceil(seconds * SR / y.size))[: int(seconds * SR)]


def grid(n_samples: int, sr: int, hop_s: float) -> np.ndarray:
    """Stream times of every window a lossless pipeline must classify (same arithmetic as Pipeline)."""
    window, hop = math.ceil(WINDOW_SAMPLES * sr / MODEL_SR), max(1, round(hop_s * sr))
    first = min(math.ceil(FIRST_WINDOW_SECONDS * sr), window)  # a stream's first window comes early
    ends = np.arange(first, n_samples + 1, hop)
    return ends / sr


def missing(expected: np.ndarray, got: list[float], tol: float = 2e-3) -> np.ndarray:
    """The expected window times with no prediction within ``tol`` seconds."""
    got = np.sort(np.asarray(got, dtype=float))
    if got.size == 0:
        return expected
    i = np.searchsorted(got, expected)
    lo, hi = got[np.clip(i - 1, 0, got.size - 1)], got[np.clip(i, 0, got.size - 1)]
    return expected[np.minimum(np.abs(lo - expected), np.abs(hi - expected)) > tol]


def overlaps(t_end: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    win = WINDOW_SAMPLES / MODEL_SR
    hit = np.zeros(t_end.shape, bool)
    for a, b in spans:
        hit |= (t_end > a) & (t_end - win < b)
    return hit


def restart_race(engine, app, path: Path, rounds: int, result: dict) -> None:
    """``rounds`` times: start a looping file source, then POST .../restart twice and DELETE it
    together (the DELETE a millisecond later); it must end up gone, with no reader thread left.
    Fills ``result``: rounds done, hidden pipelines found, unexpected HTTP answers."""
    result.update(rounds=0, hidden=0, bad_answers=[])
    for k in range(rounds):
        sid = label = f"race-{k}"
        engine.start_source({"kind": "file", "path": str(path), "loop": True, "label": label, "id": sid})
        answers = together(
            lambda: app.test_client().post(f"/api/sources/{sid}/restart").status_code,
            lambda: app.test_client().post(f"/api/sources/{sid}/restart").status_code,
            lambda: (time.sleep(0.001), app.test_client().delete(f"/api/sources/{sid}").status_code)[1])
        # A restart before the DELETE answers 200, one after it 400/404; the DELETE always wins.
        if answers[2] != 200 or any(a not in (200, 400, 404) for a in answers[:2]):
            result["bad_answers"].append((sid, answers))
        listed = sid in {s["id"] for s in engine.status()["sources"]}
        deadline = time.monotonic() + 5.0
        while (alive := [t for t in threading.enumerate() if t.name == f"file-source-{label}" and t.is_alive()]) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        if listed or alive:
            result["hidden"] += 1
            print(f"soak: {sid} left behind: listed={listed}, {len(alive)} reader thread(s)", file=sys.stderr)
        result["rounds"] = k + 1
        time.sleep(RACE_PAUSE_S)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="minutes of file audio in total (default 20)")
    ap.add_argument("--hop", type=float, default=3.0, help="seconds between windows (default 3: every sample once)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--race", type=int, default=20, metavar="N",
                    help="rounds of two concurrent restarts and a DELETE of one source (default 20; 0: none)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    per_source = args.minutes * 60 / 3
    tmp = Path(tempfile.mkdtemp(prefix="gm-soak-"))
    audio = build_audio(args.minutes * 60)
    paths = {}
    for i, name in enumerate(("clean", "corrupt", "crash")):
        paths[name] = tmp / f"{name}.wav"
        sf.write(paths[name], audio[int(i * per_source * SR): int((i + 1) * per_source * SR)], SR, subtype="PCM_16")
    demo = sorted((ROOT / "media" / "demo").glob("*.ogg"))

    from server.model.registry import load_model

    engine = Engine(hop=args.hop, fast=True)
    engine.use_model(load_model(args.model))
    engine.model.predict(np.zeros((1, WINDOW_FRAMES, N_MELS), np.float32))
    sink = Collector()
    engine.add_sink(sink)

    # corrupt: garbage bursts at known stream times, injected into the blocks the source delivers
    bursts: list[tuple[float, float]] = []
    pos = [0]

    def corrupt_blocks(stage, data):
        if stage != "block":
            return None
        t0, pos[0] = pos[0] / SR, pos[0] + data.size
        t1 = pos[0] / SR
        k = math.floor(t1 / BURST_EVERY_S)
        a = k * BURST_EVERY_S + BURST_EVERY_S / 2
        if k >= 0 and t0 < a + BURST_S and t1 > a:
            if not bursts or bursts[-1][0] != a:
                bursts.append((a, a + BURST_S))
            bad = data.copy()
            bad[::2], bad[1::5], bad[3::7] = np.nan, np.inf, 1e30
            return bad
        return None

    # crash: the feature stage raises at one window, about 40 % into the file
    crash_grid = grid(int(per_source * SR), SR, args.hop)
    crash_at = int(len(crash_grid) * 0.4)
    calls = [0]

    def crash_stage(stage, data):
        if stage == "window":
            calls[0] += 1
            if calls[0] == crash_at + 1:
                raise RuntimeError("soak: injected fault in the feature stage")

    t_start = time.monotonic()
    for name in ("clean", "corrupt", "crash"):
        engine.start_source({"kind": "file", "path": str(paths[name]), "id": name})
    engine.pipeline("corrupt").fault_hook = corrupt_blocks
    engine.pipeline("crash").fault_hook = crash_stage
    radio = RadioServer(encode_mp3(demo[1], seconds=20.0), 20.0)
    engine.start_source({"kind": "stream", "url": radio.url, "id": "stream"})
    engine.worker.start()

    # The restart race runs beside the soak, through the REST API of a real app on this engine.
    race: dict = {}
    race_thread = None
    if args.race > 0:
        from server.web.app import create_app

        race_path = tmp / "race.wav"
        sf.write(race_path, audio[: 20 * SR], SR, subtype="PCM_16")
        app, _ = create_app(engine, upload_dir=tmp / "uploads")
        race_thread = threading.Thread(target=restart_race, args=(engine, app, race_path, args.race, race),
                                       name="soak-race", daemon=True)
        race_thread.start()

    cuts, reconnect_at, restarted = 0, [], False
    last_cut = time.monotonic()
    stream = engine.pipeline("stream").source
    prev_state = "starting"
    try:
        while True:
            time.sleep(0.1)
            states = {s["id"]: s["state"] for s in engine.status()["sources"]}
            if states["crash"] == "error" and not restarted:
                engine.restart_source("crash")
                restarted = True
            now = time.monotonic()
            if stream.state == "running" and now - last_cut > CUT_EVERY_S:
                reconnect_at.append(stream.samples_delivered / stream.samplerate)
                radio.cut()
                cuts += 1
                last_cut = now
                threading.Timer(CUT_S, radio.resume).start()
            prev_state = stream.state
            files_done = all(states[n] in ("ended", "error") for n in ("clean", "corrupt")) and \
                restarted and states["crash"] in ("ended", "error")
            race_done = race_thread is None or not race_thread.is_alive()
            if files_done and race_done and cuts >= 2 and now - last_cut > CUT_S + 15:
                break
            if now - t_start > 3600:
                print("soak: gave up after an hour", file=sys.stderr)
                break
        time.sleep(1.0)
        worker_alive = engine.worker.is_alive()
        stream_state = prev_state
    finally:
        engine.shutdown()
        radio.close()
    wall = time.monotonic() - t_start

    rows = []
    n_file = int(per_source * SR)
    full = grid(n_file, SR, args.hop)
    got = sink.preds
    # clean
    lost = missing(full, got.get("clean", []))
    rows.append(("clean", "none", len(full), len(got.get("clean", [])), 0, len(lost)))
    # corrupt
    faulted = overlaps(full, bursts)
    lost = missing(full, got.get("corrupt", []))
    lost_beyond = lost[~overlaps(lost, bursts)]
    rows.append(("corrupt", f"{len(bursts)} NaN/Inf bursts", len(full), len(got.get("corrupt", [])),
                 int(faulted.sum()), len(lost_beyond)))
    # crash: run 1 up to the crash, then run 2 complete
    ts = got.get("crash", [])
    split = next((i for i in range(1, len(ts)) if ts[i] < ts[i - 1]), len(ts))
    run1, run2 = ts[:split], ts[split:]
    lost1 = missing(full[:crash_at], run1)
    lost2 = missing(full, run2)
    rows.append(("crash", "raising stage + restart", crash_at + len(full), len(ts),
                 len(full) - crash_at, len(lost1) + len(lost2)))
    # stream: contiguous stream time; windows near a reconnect are faulted
    st = got.get("stream", [])
    if st:
        sgrid = grid(int(round(max(st) * 44100)), 44100, args.hop)
        spans = [(p, p + STREAM_FAULT_SPAN_S) for p in reconnect_at]
        lost = missing(sgrid, st)
        lost_beyond = lost[~overlaps(lost, spans)]
        rows.append(("stream", f"{cuts} cuts, {stream.reconnects} reconnects", len(sgrid), len(st),
                     int(overlaps(sgrid, spans).sum()), len(lost_beyond)))
    else:
        rows.append(("stream", f"{cuts} cuts", 0, 0, 0, 1))

    if args.race > 0:
        # expected rounds, rounds run, -, rounds that left the source listed or a reader running
        rows.append(("race", f"2 restarts + DELETE x{args.race}", args.race, race.get("rounds", 0), 0,
                     race.get("hidden", 0) + (args.race - race.get("rounds", 0)) + len(race.get("bad_answers", []))))

    audio_s = 3 * per_source + (max(st) if st else 0)
    print(f"\nsoak: {audio_s / 60:.1f} min of audio in {wall / 60:.1f} min wall "
          f"({audio_s / wall:.1f}x real time), hop {args.hop:g} s")
    print(f"{'source':<8} {'fault':<28} {'expected':>8} {'received':>8} {'faulted':>8} {'lost':>5}")
    for r in rows:
        print(f"{r[0]:<8} {r[1]:<28} {r[2]:>8} {r[3]:>8} {r[4]:>8} {r[5]:>5}")
    print(f"non-finite/invalid probabilities: {sink.bad_probs}; worker alive: {worker_alive}; "
          f"repaired blocks: {engine.pipeline('corrupt').repaired_blocks if engine.pipeline('corrupt') else '?'}; "
          f"stream state at end: {stream_state}")
    if args.race > 0:
        print(f"restart race: {race.get('rounds', 0)}/{args.race} rounds, {race.get('hidden', 0)} hidden pipelines, "
              f"unexpected answers: {race.get('bad_answers') or 'none'}")
    errors = [n for n in sink.notices if n["level"] == "error"]
    print(f"error notices: {len(errors)}" + "".join(f"\n  [{n['source']}] {n['message']}" for n in errors))
    failed = any(r[5] for r in rows) or sink.bad_probs or not worker_alive
    print("RESULT:", "FAIL (lost windows beyond the faults)" if failed else "PASS (nothing lost beyond the faults)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
