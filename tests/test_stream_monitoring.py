"""A network stream through the whole engine: predictions arrive, a cut shows as
'reconnecting', and the source comes back by itself."""

import time
from pathlib import Path

import numpy as np
import pytest

from server.engine import Engine
from tests.support.http_audio import RadioServer, encode_mp3
from tests.support.sinks import Collector

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

ROOT = Path(__file__).resolve().parent.parent
DEMO = sorted((ROOT / "media" / "demo").glob("*.ogg"))


@pytest.fixture(scope="module")
def radio():
    with RadioServer(encode_mp3(DEMO[1], seconds=12.0), 12.0) as server:
        yield server


def _wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.1)
    return cond()


def test_stream_predictions_survive_a_cut(radio):
    from server.model.registry import load_model

    engine = Engine(hop=0.5)
    engine.use_model(load_model(None))
    engine.model.predict(np.zeros((1, 187, 96), np.float32))
    sink = Collector()
    engine.add_sink(sink)
    sid = engine.start_source({"kind": "stream", "url": radio.url})
    engine.worker.start()
    try:
        assert _wait(lambda: len(sink.predictions) >= 3, 30), sink.states()
        assert sid.startswith("stream-127-0-0-1")
        radio.cut()
        assert _wait(lambda: "reconnecting" in sink.states(), 20), sink.states()
        n_during = len(sink.predictions)
        radio.resume()
        assert _wait(lambda: len(sink.predictions) >= n_during + 3, 40), sink.states()
        state = engine.sources_payload()["sources"][0]
    finally:
        engine.shutdown()
    assert state["state"] == "running" and state["reconnects"] >= 1
    assert sink.states().index("reconnecting") < len(sink.states()) - 1 - sink.states()[::-1].index("running")
    ts = [p["t"] for p in sink.predictions]
    assert all(b > a for a, b in zip(ts, ts[1:]))  # stream time only moves forward across the cut
