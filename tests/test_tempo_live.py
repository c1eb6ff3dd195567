"""The live tempo end to end: a real music file through the engine, the real model and the worker."""

import time
from pathlib import Path

from server.audio.decode import decode
from server.engine import Engine
from server.model.tempo import LIVE_SECONDS, MIN_SECONDS, analyse_tempo
from tests.support.sinks import Collector
from tests.support.wait import poll

TRACK = Path(__file__).resolve().parents[1] / "media" / "demo" / "04-lincity.ogg"  # steady programmed beat


def test_music_windows_carry_the_tempo_of_the_newest_seconds(model):
    y, sr = decode(str(TRACK))
    offline = analyse_tempo(y, sr).bpm
    engine = Engine(hop=1.0, fast=True)
    engine.use_model(model)
    sink = Collector()
    engine.add_sink(sink)
    engine.start_source({"kind": "file", "path": str(TRACK)})
    engine.worker.start()
    try:
        assert poll(lambda: engine.status()["sources"][0]["state"] == "ended", 60), sink.notices
        time.sleep(0.3)
    finally:
        engine.shutdown()
    preds = sink.predictions
    assert len(preds) >= 30
    assert all(p["tempo"] is None for p in preds if p["t"] < MIN_SECONDS)  # too little audio yet
    assert all(p["tempo"] is None for p in preds if p["content"] != "music")
    settled = [p for p in preds if p["t"] >= LIVE_SECONDS and p["content"] == "music"]
    assert len(settled) >= 15
    near = [p for p in settled if abs(p["tempo"]["bpm"] - offline) <= 0.04 * offline]
    assert len(near) >= 0.9 * len(settled), [p["tempo"] for p in settled]
