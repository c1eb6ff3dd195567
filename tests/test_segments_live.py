"""Segments and alerts from the real model: two different-genre clips back to back.

The clips come from the research data beside the repo (never copied into it); the
file is assembled in a temporary folder at test time.
"""

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from server.engine import Engine
from tests.support.sinks import Collector
from tests.support.wait import poll

ROOT = Path(__file__).resolve().parent.parent
GTZAN = ROOT.parent / "shared" / "data" / "gtzan-mini"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not GTZAN.is_dir(), reason=f"research clips not found at {GTZAN}")]


def test_two_genres_give_two_segments_and_an_alert(tmp_path):
    first, second = sorted((GTZAN / "classical").glob("*.flac"))[0], sorted((GTZAN / "metal").glob("*.flac"))[0]
    a, sr = sf.read(first, dtype="float32")
    b, sr_b = sf.read(second, dtype="float32")
    assert sr == sr_b
    joined = tmp_path / "classical-then-metal.wav"
    sf.write(joined, np.concatenate([a, b]), sr)
    join_t = len(a) / sr

    engine = Engine(hop=1.0, fast=True)
    engine.set_monitoring(segments={"min_duration": 8.0, "hysteresis": 0.1})
    sink = Collector()
    engine.add_sink(sink)
    engine.load_model(None)
    sid = engine.start_source({"kind": "file", "path": str(joined)})
    engine.set_rules(sid, [{"type": "unexpected_genre", "expected": ["classical"], "for": 10}])
    engine.worker.start()
    try:
        poll(lambda: engine.status()["sources"][0]["state"] == "ended", 120, 0.2)
        time.sleep(0.5)
        engine.stop_source(sid)  # closes the open segment
    finally:
        engine.shutdown()

    closed = [s for s in sink.segments if s["event"] == "closed"]
    assert [s["genre"] for s in closed] == ["classical", "metal"], [(s["genre"], s["start"], s["end"]) for s in closed]
    boundary = closed[1]["start"]
    # Segment times are window ends: a window ending 1.5 s after the join is mostly the new genre.
    assert abs(boundary - (join_t + 1.5)) <= 6.0, (boundary, join_t)
    firing = [al for al in sink.alerts if al["state"] == "firing"]
    assert len(firing) == 1 and firing[0]["source"] == sid
    assert join_t + 10 <= firing[0]["t"] <= join_t + 25
    assert "metal" in firing[0]["message"]
