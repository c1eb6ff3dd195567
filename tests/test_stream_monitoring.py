"""A network stream through the whole engine: predictions arrive, a cut shows as
'reconnecting', and the source comes back by itself."""

from pathlib import Path

import pytest

from server.engine import Engine
from tests.support.http_audio import RadioServer, encode_mp3
from tests.support.sinks import Collector
from tests.support.wait import poll

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

ROOT = Path(__file__).resolve().parent.parent
DEMO = sorted((ROOT / "media" / "demo").glob("*.ogg"))


@pytest.fixture(scope="module")
def radio():
    with RadioServer(encode_mp3(DEMO[1], seconds=12.0), 12.0) as server:
        yield server



def test_stream_predictions_survive_a_cut(radio, model):
    engine = Engine(hop=0.5)
    engine.use_model(model)
    sink = Collector()
    engine.add_sink(sink)
    sid = engine.start_source({"kind": "stream", "url": radio.url})
    engine.worker.start()
    try:
        assert poll(lambda: len(sink.predictions) >= 3, 30), sink.states()
        assert sid.startswith("stream-127-0-0-1")
        radio.cut()
        assert poll(lambda: "reconnecting" in sink.states(), 20), sink.states()
        n_during = len(sink.predictions)
        radio.resume()
        assert poll(lambda: len(sink.predictions) >= n_during + 3, 40), sink.states()
        state = engine.status()["sources"][0]
    finally:
        engine.shutdown()
    assert state["state"] == "running" and state["reconnects"] >= 1
    assert sink.states().index("reconnecting") < len(sink.states()) - 1 - sink.states()[::-1].index("running")
    ts = [p["t"] for p in sink.predictions]
    assert all(b > a for a, b in zip(ts, ts[1:]))  # stream time only moves forward across the cut
