"""Genre segments from window probabilities, and the per-source stage that combines
smoothing, segments and alerts."""

import json

import numpy as np
import pytest

from server.monitor.classified import ClassifiedWindow
from server.monitor.segments import SegmentError, SegmentTracker
from server.monitor.stage import SourceMonitor
from server.sinks.payloads import prediction_payload
from tests.support.monitor import LABELS, WALL0, genre_windows


def run_tracker(tracker, windows):
    events = []
    for t, wall, p in windows:
        events += tracker.update(t, wall, p)
    return events + tracker.finish()


def closed(events):
    return [e["segment"] for e in events if e["event"] == "closed"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_genres_give_two_segments_with_the_change_near_the_join(seed):
    windows = list(genre_windows([("jazz", 60), ("metal", 60)], outliers=[20, 21, 40, 90, 100], seed=seed))
    events = run_tracker(SegmentTracker(LABELS), windows)
    segs = closed(events)
    assert [s["genre"] for s in segs] == ["jazz", "metal"]
    jazz, metal = segs
    assert abs(jazz["end"] - 60) <= 4 and jazz["end"] == metal["start"]
    assert metal["start_wall"] == pytest.approx(WALL0 + metal["start"])
    assert jazz["start"] == windows[0][0] and metal["end"] == windows[-1][0]
    assert jazz["windows"] + metal["windows"] == len(windows)
    assert 0.3 < jazz["mean_confidence"] < 1 and 0.3 < metal["mean_confidence"] < 1
    assert [e["event"] for e in events] == ["started", "closed", "started", "closed"]
    json.dumps(events)  # plain python types only


def test_the_change_is_reported_after_min_duration_and_back_dated():
    tracker = SegmentTracker(LABELS, min_duration=15.0)
    seen = {}
    for t, wall, p in genre_windows([("jazz", 60), ("metal", 60)]):
        for e in tracker.update(t, wall, p):
            seen.setdefault((e["event"], e["segment"]["genre"]), (t, e["segment"]))
    t_started, metal = seen[("started", "metal")]
    assert t_started - metal["start"] >= 15.0  # decided only after min_duration...
    assert abs(metal["start"] - 60) <= 4       # ...but the boundary is where the change was
    assert metal["open"] and metal["end"] == t_started
    assert not seen[("closed", "jazz")][1]["open"]


def test_blips_shorter_than_min_duration_do_not_make_segments():
    plan = [("jazz", 40), ("rock", 8), ("jazz", 30), ("metal", 10), ("jazz", 40)]
    events = run_tracker(SegmentTracker(LABELS, min_duration=15.0), genre_windows(plan, noise=0.3))
    segs = closed(events)
    assert [s["genre"] for s in segs] == ["jazz"]
    assert segs[0]["windows"] == 126  # every window, blips included


def test_hysteresis_keeps_the_genre_when_the_challenger_is_barely_ahead():
    """Two genres nearly tied: the challenger tops the current one, but never by the margin."""
    def probs(jazz, blues):
        p = np.full(len(LABELS), (1 - jazz - blues) / (len(LABELS) - 2))
        p[LABELS.index("jazz")], p[LABELS.index("blues")] = jazz, blues
        return p
    seq = [(float(t), WALL0 + t, probs(0.6, 0.2)) for t in range(3, 40)]
    seq += [(float(t), WALL0 + t, probs(0.38, 0.42)) for t in range(40, 100)]
    assert [s["genre"] for s in closed(run_tracker(SegmentTracker(LABELS, hysteresis=0.1), seq))] == ["jazz"]
    segs = closed(run_tracker(SegmentTracker(LABELS, hysteresis=0.02), seq))
    assert [s["genre"] for s in segs] == ["jazz", "blues"] and segs[1]["start"] == 40.0


def test_uncertain_stretches_become_uncertain_segments():
    plan = [("jazz", 40), ("metal", 40), ("jazz", 40)]
    windows = list(genre_windows(plan, quiet="metal", noise=0.2))  # the middle is flat: nobody is sure
    segs = closed(run_tracker(SegmentTracker(LABELS, uncertain_threshold=0.3), windows))
    assert [s["genre"] for s in segs] == ["jazz", "uncertain", "jazz"]
    assert abs(segs[1]["start"] - 40) <= 4 and abs(segs[1]["end"] - 80) <= 4
    assert segs[1]["mean_confidence"] < 0.3
    # without a threshold the flat stretch is just noise inside whichever genre leads
    assert "uncertain" not in [s["genre"] for s in closed(run_tracker(SegmentTracker(LABELS), windows))]


def test_current_segment_and_short_streams():
    tracker = SegmentTracker(LABELS)
    assert tracker.current() is None
    windows = list(genre_windows([("disco", 10)]))
    for t, wall, p in windows:
        assert tracker.update(t, wall, p) == []  # not sure yet: less than min_duration
    events = tracker.finish()  # a stream shorter than min_duration still gets its segment
    assert [(e["event"], e["segment"]["genre"]) for e in events] == [("started", "disco"), ("closed", "disco")]
    assert events[1]["segment"]["windows"] == len(windows)

    for t, wall, p in genre_windows([("disco", 30)]):
        tracker.update(t, wall, p)
    cur = tracker.current()
    assert cur["genre"] == "disco" and cur["open"] and cur["end"] == 30.0 and cur["windows"] == 28


def test_a_gap_in_time_closes_the_segment():
    tracker = SegmentTracker(LABELS, min_duration=5.0)
    events = []
    for t, wall, p in genre_windows([("jazz", 30)]):
        events += tracker.update(t, wall, p)
    for t, wall, p in genre_windows([("jazz", 30)]):
        events += tracker.update(t + 100, wall + 100, p)  # the stream came back 70 s later
    segs = closed(events + tracker.finish())
    assert [(s["start"], s["end"]) for s in segs] == [(3.0, 30.0), (103.0, 130.0)]


@pytest.mark.parametrize("kwargs, words", [
    ({"labels": []}, "labels must be a non-empty list"),
    ({"labels": ["a", "uncertain"]}, "must not include 'uncertain'"),
    ({"min_duration": -1}, "min_duration (seconds) must be >= 0"),
    ({"hysteresis": 1.5}, "hysteresis must be >= 0 and < 1"),
    ({"uncertain_threshold": 0}, "uncertain_threshold must be > 0"),
    ({"min_duration": "long"}, "min_duration (seconds) must be a number"),
])
def test_bad_settings_have_clear_messages(kwargs, words):
    with pytest.raises(SegmentError) as err:
        SegmentTracker(**{"labels": LABELS, **kwargs})
    assert words in str(err.value)


def test_wrong_number_of_probabilities_is_rejected():
    with pytest.raises(SegmentError, match="10 finite numbers"):
        SegmentTracker(LABELS).update(3.0, WALL0, [0.5, 0.5])


# --- the per-source stage --------------------------------------------------------------------------
def predictions(plan, levels=None, **kw):
    for t, wall, p in genre_windows(plan, **kw):
        level = -20.0 if levels is None else levels(t)
        yield ClassifiedWindow("radio", t, wall, "test", tuple(LABELS), np.asarray(p, dtype=np.float64), level_db=level)


def test_stage_smooths_segments_and_alerts_in_one_call():
    monitor = SourceMonitor(LABELS, smoothing={"kind": "ema", "tau": 5},
                            rules=[{"type": "unexpected_genre", "expected": ["jazz", "blues"], "for": 30},
                                   {"type": "silence", "for": 5, "threshold_db": -50}],
                            uncertain_threshold=0.2)
    events, monitored = [], []
    silent = lambda t: -70.0 if 100 <= t < 110 else -18.0
    for pred in predictions([("jazz", 60), ("metal", 60)], levels=silent, outliers=[30, 31, 80], seed=3):
        window, evs = monitor.process(pred)
        monitored.append(window)
        events += evs
    events += monitor.finish("radio")
    json.dumps(events)
    json.dumps([prediction_payload(w) for w in monitored])

    segs = [e for kind, e in events if kind == "segment" and e["event"] == "closed"]
    assert [s["genre"] for s in segs] == ["jazz", "metal"]
    assert abs(segs[0]["end"] - 60) <= 4  # the raw probabilities undo the smoother's lag
    assert all(s["source"] == "radio" for s in segs)

    alerts = [e for kind, e in events if kind == "alert"]
    assert [(a["type"], a["state"]) for a in alerts] == [
        ("unexpected_genre", "firing"), ("silence", "firing"), ("silence", "resolved")]
    fire = alerts[0]
    assert fire["genre"] == "metal" and fire["rule"] == 0 and fire["source"] == "radio"
    assert 90 <= fire["t"] <= 100 and "metal has dominated for 3" in fire["message"]

    last = monitored[-1]
    assert last.smoothed_top == "metal" and abs(sum(last.smoothed) - 1) < 1e-3
    assert last.smoothed_uncertain is False and last.segment["genre"] == "metal" and last.segment["open"]
    assert monitored[0].segment is None  # nothing decided in the first window


def test_stage_rejects_bad_settings_with_value_errors():
    with pytest.raises(ValueError, match="unknown rule type"):
        SourceMonitor(LABELS, rules=[{"type": "polka"}])
    with pytest.raises(ValueError, match="unknown smoothing kind"):
        SourceMonitor(LABELS, smoothing={"kind": "kalman"})
    with pytest.raises(ValueError, match="unknown segment setting"):
        SourceMonitor(LABELS, segments={"min_len": 3})
