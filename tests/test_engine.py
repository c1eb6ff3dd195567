"""The engine end to end on a real file source and the real model (no web tier)."""

import threading
import time

import numpy as np
import pytest

from server.config import FIRST_WINDOW_SECONDS
from server.engine import Engine, EngineError
from server.model.stream_memory import remembered_streams
from tests.support.sinks import Collector
from tests.support.wait import poll
from tests.support.threads import together




def test_live_predictions_and_spectrogram(song, model):
    engine = Engine(hop=0.5)
    engine.use_model(model)
    sink = Collector()
    engine.add_sink(sink)
    engine.start_source({"kind": "file", "path": song, "loop": True})
    engine.worker.start()
    try:
        assert poll(lambda: len(sink.predictions) >= 4, 30), sink.notices
    finally:
        engine.shutdown()
    preds = sink.predictions
    for p in preds:
        assert abs(sum(p["probs"]) - 1) < 1e-4
        assert p["top"] == p["labels"][int(np.argmax(p["probs"]))]
        assert p["labels"] == list(model.labels)
    # Windows end on the hop grid; any gap (a loaded machine) is counted as skipped, never lost silently.
    ts = [p["t"] for p in preds]
    steps = [round((b - a) / 0.5) for a, b in zip(ts, ts[1:])]
    assert all(abs(b - a - 0.5 * k) < 1e-3 and k >= 1 for (a, b), k in zip(zip(ts, ts[1:]), steps)), ts
    skipped = [p["counters"]["skipped"] for p in preds]
    assert [b - a for a, b in zip(skipped, skipped[1:])] == [k - 1 for k in steps]
    # The grid starts at the stream's first window (FIRST_WINDOW_SECONDS of audio).
    first = FIRST_WINDOW_SECONDS
    assert (ts[0] - first) / 0.5 == pytest.approx(round((ts[0] - first) / 0.5), abs=0.01)
    cols = [c for s in sink.spectrograms for c in s["columns"]]
    times = [t for s in sink.spectrograms for t in s["times"]]
    assert all(len(c) == 96 for c in cols)
    assert all(b > a for a, b in zip(times, times[1:])), "spectrogram columns repeat or go back"
    assert sink.sources and sink.sources[-1]["sources"][0]["state"] in ("running", "ended")


def test_falling_behind_jumps_to_newest_window_and_counts_skips(song, model):
    engine = Engine(hop=0.25)
    engine.use_model(model)
    sink = Collector()
    engine.add_sink(sink)
    sid = engine.start_source({"kind": "file", "path": song})
    try:
        time.sleep(5.0)  # the worker is "stalled": nobody ticks for ~8 hops
        assert engine.worker.tick() == 1  # one window, not a backlog of eight
    finally:
        engine.shutdown()
    p = sink.predictions[0]
    assert p["counters"]["skipped"] >= 3
    assert p["counters"]["windows"] == 1
    assert p["source"] == sid


def test_fast_mode_classifies_every_window_of_a_file(song, model):
    """--fast: the file is read as fast as the worker takes it, and no window is lost."""
    engine = Engine(hop=0.5, fast=True)
    sink = Collector()
    engine.add_sink(sink)
    engine.start_source({"kind": "file", "path": song})
    engine.worker.start()
    time.sleep(0.5)
    engine.use_model(model)  # the source waited for the model instead of skipping
    try:
        assert poll(lambda: engine.status()["sources"][0]["state"] == "ended"
                     and len(sink.predictions) >= 23, 60)
        time.sleep(0.3)
    finally:
        engine.shutdown()
    ts = [p["t"] for p in sink.predictions]
    # 12 s of audio: windows ending at 1 s (the first window), 1.5 s, ... up to 12 s, each exactly once.
    assert len(ts) == 23, ts
    assert ts[0] == pytest.approx(FIRST_WINDOW_SECONDS, abs=0.01)
    assert all(abs(b - a - 0.5) < 1e-3 for a, b in zip(ts, ts[1:]))
    assert sink.predictions[-1]["counters"]["skipped"] == 0


def test_bad_requests_are_refused_with_a_message():
    engine = Engine()
    with pytest.raises(EngineError, match="no such file"):
        engine.start_source({"kind": "file", "path": "/nonexistent/x.flac"})
    with pytest.raises(EngineError, match="unknown source kind"):
        engine.start_source({"kind": "radio"})
    with pytest.raises(EngineError, match="hop"):
        engine.start_source({"kind": "demo", "hop": 10})
    with pytest.raises(EngineError, match="no source"):
        engine.stop_source("nope")


def test_new_settings_rules_or_model_close_the_open_segment(song, model, tmp_path):
    """Each change replaces the source's monitor: the old one's open segment is closed first,
    so no segment stays ``open`` in the history."""
    from server.sinks.history import open_store

    engine = Engine(hop=0.5)
    engine.use_model(model)
    engine.settings.update(segments={"min_duration": 0.0, "hysteresis": 0.1})  # a segment opens at once
    sink, store = Collector(), open_store(tmp_path / "history.sqlite")
    engine.add_sink(sink)
    engine.add_sink(store)
    sid = engine.start_source({"kind": "file", "path": song, "loop": True})
    engine.worker.start()

    def events(kind):
        with sink.lock:
            return [e["start_wall"] for e in sink.segments if e["event"] == kind]

    changes = [lambda: engine.set_monitoring(segments={"min_duration": 0.0, "hysteresis": 0.2}),
               lambda: engine.set_rules(sid, [{"type": "silence", "for": 5}]),
               lambda: engine.load_model(None),
               lambda: engine.stop_source(sid)]
    try:
        for change in changes:
            opened = len(events("started"))
            assert poll(lambda: len(events("started")) > opened, 30), sink.notices
            before = events("started")
            change()
            # Closed by the change itself, not by some later window.
            assert set(before) <= set(events("closed")), (change, sink.segments[-3:])
    finally:
        engine.shutdown()
    assert store.flush()
    rows = store.segments(sid)
    store.close()
    assert {r["start_wall"] for r in rows} == set(events("started")) and len(rows) >= 3, rows
    assert not [r for r in rows if r["open"]], rows
    assert sorted(events("started")) == sorted(events("closed"))


def _source_threads(label):
    return [t for t in threading.enumerate() if t.name == f"file-source-{label}" and t.is_alive()]


def test_concurrent_restarts_and_a_stop_leave_no_hidden_pipeline(song):
    engine = Engine(hop=0.5)
    try:
        for attempt in range(8):  # a race: try it several times
            label = f"race-{attempt}"
            sid = engine.start_source({"kind": "file", "path": song, "loop": True, "label": label})
            assert together(lambda: engine.restart_source(sid), lambda: engine.restart_source(sid)) == [sid, sid]
            # Only the registered pipeline reads the file: the first restart's was stopped, not overwritten.
            running = _source_threads(label)
            assert running == [engine.pipeline(sid).source.thread], running
            # The stop arrives while the restart is under way (or, now and then, just before it).
            restarted, stopped = together(lambda: engine.restart_source(sid),
                                           lambda: (time.sleep(0.001), engine.stop_source(sid))[1])
            assert stopped is None and (restarted == sid or isinstance(restarted, EngineError)), restarted
            # The stop wins whichever ran first: the restart never puts the source back.
            assert sid not in engine.source_ids() and poll(lambda: not _source_threads(label), 5), attempt
    finally:
        engine.shutdown()


def test_concurrent_starts_get_their_own_ids(song):
    engine = Engine(hop=0.5)
    try:
        ids = together(*[lambda: engine.start_source({"kind": "file", "path": song, "label": "twin"})] * 3)
        assert len(set(ids)) == 3 and sorted(ids) == sorted(engine.source_ids()), ids
        assert len(_source_threads("twin")) == 3
        with pytest.raises(EngineError, match="already running"):
            engine.start_source({"kind": "file", "path": song, "id": ids[0]})
    finally:
        engine.shutdown()


def test_a_stopped_source_leaves_no_frame_reuse_memory(song, model):
    engine = Engine(hop=0.5)
    engine.use_model(model)
    sink = Collector()
    engine.add_sink(sink)
    keep = engine.start_source({"kind": "file", "path": song, "loop": True})
    ids = [engine.start_source({"kind": "file", "path": song, "loop": True}) for _ in range(3)]
    engine.worker.start()
    try:
        def owners():
            return {str(k).rpartition("#")[0] for k in remembered_streams()}

        # Every source's windows went through the model, so each has streams remembered.
        assert poll(lambda: {keep, *ids} <= owners(), 60), (owners(), sink.notices)
        for sid in ids:
            engine.stop_source(sid)
        # At once, or as soon as a batch that was in the model when they stopped comes out.
        assert poll(lambda: not owners() & set(ids), 30), owners()
        assert keep in owners()  # the running source keeps its own
        # No stale streams of its own (one may be replacing another at this very moment).
        assert poll(lambda: len({k for k in remembered_streams() if engine.pipeline(keep).owns_stream(k)}) == 1, 10)
        engine.worker.stop(timeout=30)
        engine.restart_source(keep)  # a restarted source starts afresh: its old streams go too
        assert not any(engine.pipeline(keep).owns_stream(k) for k in remembered_streams())
    finally:
        engine.shutdown()
