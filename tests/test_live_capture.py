"""Real capture end to end: music played into a PulseAudio null sink, captured through
PortAudio by the microphone source, classified by the engine."""

import time
from pathlib import Path

import numpy as np
import pytest

from server.engine import Engine
from tests.support.pulse import requires_pulseaudio
from tests.support.sinks import Collector

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

ROOT = Path(__file__).resolve().parent.parent
DEMO = sorted((ROOT / "media" / "demo").glob("*.ogg"))


@requires_pulseaudio
def test_predictions_arrive_from_captured_music(pulse, model):
    engine = Engine(hop=0.5)
    engine.use_model(model)
    sink = Collector()
    engine.add_sink(sink)
    sid = engine.start_source({"kind": "mic", "device": "pulse"})
    engine.worker.start()
    player = None
    try:
        time.sleep(2.5)  # the null sink's monitor delivers its first block ~2 s after opening
        player = pulse.play(DEMO[1])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            loud = [s["times"][0] for s in sink.spectrograms if _loud(s)]
            if loud and sum(p["t"] > loud[0] + 3 for p in sink.predictions) >= 3:
                break  # three windows full of captured music were classified
            time.sleep(0.2)
        state = engine.status()["sources"][0]
    finally:
        if player:
            player.kill()
        engine.shutdown()
    assert state["id"] == sid and state["kind"] == "mic" and state["state"] == "running", state
    assert len(sink.predictions) >= 3, sink.notices
    for p in sink.predictions:
        assert abs(sum(p["probs"]) - 1) < 1e-4 and p["source"] == sid
    # The captured music shows in the spectrogram well above the silence floor.
    assert any(_loud(s) for s in sink.spectrograms), "captured audio stayed silent"


def _loud(spec) -> bool:
    cols = np.asarray(spec["columns"])
    return cols.size > 0 and float(np.median(cols)) > spec["db_floor"] + 30
