"""Faults through the real engine: a device that vanishes and comes back, a pipeline
stage that raises (only its source stops; restart brings it back), corrupt sample
bursts, and a stream that never worked."""

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from server.engine import Engine
from tests.support.audio import make_music
from tests.support.http_audio import RadioServer, encode_mp3
from tests.support.pulse import pulse_server, requires_pulseaudio, start_pulse
from tests.support.sinks import Collector
from tests.support.wait import poll

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

ROOT = Path(__file__).resolve().parent.parent
DEMO = sorted((ROOT / "media" / "demo").glob("*.ogg"))




@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    out = []
    for i in range(2):
        p = d / f"song{i}.wav"
        sf.write(p, make_music(sr=22050, seconds=8.0, seed=i), 22050)
        out.append(str(p))
    return out


@pytest.fixture
def engine(model):
    eng = Engine(hop=0.5)
    eng.use_model(model)
    sink = Collector()
    eng.add_sink(sink)
    eng.worker.start()
    yield eng, sink
    eng.shutdown()


def _state(engine, sid):
    return next(s for s in engine.status()["sources"] if s["id"] == sid)


def test_raising_stage_stops_only_its_source_and_restart_brings_it_back(engine, songs):
    eng, sink = engine
    a = eng.start_source({"kind": "file", "path": songs[0], "loop": True, "id": "a"})
    b = eng.start_source({"kind": "file", "path": songs[1], "loop": True, "id": "b"})
    assert poll(lambda: sink.count(a) >= 2 and sink.count(b) >= 2, 30)

    def boom(stage, data):
        if stage == "window":
            raise RuntimeError("injected fault in the feature stage")

    eng.pipeline(a).fault_hook = boom
    assert poll(lambda: _state(eng, a)["state"] == "error", 10)
    assert "injected fault" in _state(eng, a)["error"]
    assert any(n["source"] == a and "injected fault" in n["message"] for n in sink.notices)
    n_a, n_b = sink.count(a), sink.count(b)
    assert poll(lambda: sink.count(b) >= n_b + 4, 30)  # the other source carries on
    assert sink.count(a) == n_a  # the failed one stays stopped, without a notice storm
    assert sum(n["source"] == a and n["level"] == "error" for n in sink.notices) == 1
    assert eng.worker.is_alive()

    assert eng.restart_source(a) == a
    assert _state(eng, a)["state"] == "running" and _state(eng, a)["error"] is None
    assert eng.pipeline(a).fault_hook is None
    assert poll(lambda: sink.count(a) >= n_a + 3, 30)
    assert _state(eng, b)["state"] == "running"
    assert sorted(eng.source_ids()) == ["a", "b"]


def test_corrupt_sample_bursts_are_repaired(engine, songs):
    eng, sink = engine
    sid = eng.start_source({"kind": "file", "path": songs[0], "loop": True})
    bursts = [0]

    def corrupt(stage, data):
        if stage == "block" and bursts[0] < 20:
            bursts[0] += 1
            bad = data.copy()
            bad[::3] = np.nan
            bad[1::7] = np.inf
            bad[2::11] = 1e30
            return bad
        return None

    eng.pipeline(sid).fault_hook = corrupt
    assert poll(lambda: sink.count(sid) >= 6, 30)
    assert eng.pipeline(sid).repaired_blocks == 20
    for p in sink.predictions:
        assert np.isfinite(p["probs"]).all() and abs(sum(p["probs"]) - 1) < 1e-4
        assert np.isfinite(p["level_db"])
    assert _state(eng, sid)["state"] == "running"


def test_stream_that_never_worked_ends_in_error(engine):
    eng, sink = engine
    with RadioServer(encode_mp3(DEMO[0], seconds=4.0), 4.0) as radio:
        sid = eng.start_source({"kind": "stream", "url": radio.url_404})
        assert poll(lambda: _state(eng, sid)["state"] == "error", 60), sink.state_maps()
    err = _state(eng, sid)["error"]
    assert "404" in err or "not found" in err.lower(), err
    assert any(n["source"] == sid for n in sink.notices)


@requires_pulseaudio
def test_device_that_disappears_is_lost_then_back(engine):
    eng, sink = engine
    with pulse_server() as srv:
        sid = eng.start_source({"kind": "mic", "device": "pulse"})
        mic = eng.pipeline(sid).source
        assert poll(lambda: sink.count(sid) >= 2, 30)
        srv.stop()  # the sound server dies: the device is gone
        assert poll(lambda: _state(eng, sid)["state"] == "lost", 15)
        assert poll(lambda: any(n["source"] == sid and "reopen" in n["message"] for n in sink.notices), 5)
        time.sleep(2.5)  # a few failed reopen attempts
        assert _state(eng, sid)["state"] == "lost"
        srv2 = start_pulse(srv.runtime_dir)  # the same socket: the device is back
        try:
            blocks = mic.blocks
            assert poll(lambda: _state(eng, sid)["state"] == "running", 30), _state(eng, sid)
            n = sink.count(sid)
            assert poll(lambda: mic.blocks > blocks + 20 and sink.count(sid) >= n + 2, 30)
            assert _state(eng, sid)["reopens"] == 1
        finally:
            eng.stop_source(sid)
            srv2.stop()
    seen = [s.get(sid) for s in sink.state_maps()]
    assert "lost" in seen and "running" in seen[seen.index("lost"):]
