"""The classified window: one record from the worker to the sinks, JSON only at the edges."""

import json

import numpy as np

from server.model.content import SPEECH
from server.monitor.classified import ClassifiedWindow, Counters
from server.monitor.stage import SourceMonitor
from server.sinks.payloads import prediction_payload, window_from_payload

LABELS = ("blues", "jazz", "rock")

# A monitored `prediction` event exactly as docs/events.md shows it.
EVENT = {
    "source": "demo", "t": 12.0, "wall": 1763800000.123, "model": "default", "content": "music",
    "content_probs": {"music": 0.99, "speech": 0.01, "noise": 0.0}, "labels": list(LABELS),
    "probs": [0.1, 0.82, 0.08], "top": "jazz", "confidence": 0.82, "uncertain": False,
    "tags": [{"name": "guitar", "score": 0.71}], "level_db": -21.5,
    "counters": {"windows": 12, "skipped": 0, "overflows": 0},
    "tempo": {"bpm": 128.0, "clarity": 0.42, "alternative": 64.0},
    "smoothed": [0.2, 0.7, 0.1], "smoothed_top": "jazz",
    "segment": {"genre": "jazz", "start": 3.0, "end": 12.0, "start_wall": 1763799991.1, "end_wall": 1763800000.1,
                "mean_confidence": 0.8, "windows": 10, "open": True},
    "smoothed_uncertain": False,
}


def test_the_event_survives_a_round_trip_through_the_record():
    w = window_from_payload(EVENT)
    assert w.top == "jazz" and w.confidence == 0.82 and w.counters == Counters(12, 0, 0)
    assert prediction_payload(w) == EVENT
    assert list(prediction_payload(w)) == list(EVENT)  # the keys in the documented order


def test_an_unmonitored_window_has_no_smoothed_view():
    w = ClassifiedWindow("s", 1.0, 1000.0, "m", LABELS, np.array([0.2, 0.5, 0.3]))
    payload = prediction_payload(w)
    assert "smoothed" not in payload and "segment" not in payload and payload["smoothed_uncertain"] is False
    json.dumps(payload)


def test_the_monitor_returns_the_window_with_its_view_and_leaves_the_original_alone():
    monitor = SourceMonitor(list(LABELS), smoothing={"kind": "ema", "tau": 2}, uncertain_threshold=0.6)
    w = ClassifiedWindow("s", 1.0, 1000.0, "m", LABELS, np.array([0.2, 0.5, 0.3]))
    seen, events = monitor.process(w)
    assert w.smoothed is None and seen.probs is w.probs
    assert seen.smoothed_top == "jazz" and seen.smoothed_uncertain is True and events == []
    talk, _ = monitor.process(ClassifiedWindow("s", 2.0, 1001.0, "m", LABELS, np.array([0.9, 0.05, 0.05]),
                                               content=SPEECH, content_probs={"speech": 0.9}))
    assert talk.top is None and talk.confidence is None and talk.smoothed_top is None
    assert np.array_equal(talk.smoothed, seen.smoothed)  # talk leaves the smoothed genre where it was
