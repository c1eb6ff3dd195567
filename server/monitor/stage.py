"""One source's post-model stage: smoothing → segments → alerts.

One ``SourceMonitor`` per source: ``process`` takes each ``ClassifiedWindow`` and
returns it with the monitor's view (smoothed probabilities, open segment) and the
``segment``/``alert`` events to emit.
"""
from __future__ import annotations

import numpy as np

from .alerts import AlertEvaluator
from .classified import ClassifiedWindow
from .segments import SegmentError, SegmentTracker
from .smoothing import make_smoother

# The segment settings (``SegmentTracker``'s keywords) and their bounds: the API's, the saved settings'
# and the monitor's one list.
SEGMENT_SETTINGS = {"min_duration": (0, 3600, " s"), "hysteresis": (0, 1), "max_gap": (0, 3600, " s"),
                    "max_backdate": (0, 3600, " s")}


def check_segment_keys(segments: dict) -> None:
    """``SegmentError`` naming any key that is not one of ``SEGMENT_SETTINGS``."""
    unknown = sorted(set(map(str, segments)) - set(SEGMENT_SETTINGS))
    if unknown:
        raise SegmentError(f"unknown segment setting {', '.join(unknown)}; use {', '.join(sorted(SEGMENT_SETTINGS))}")


class SourceMonitor:
    """Post-model state of one source.

    ``smoothing``: smoother spec (see ``make_smoother``; None = EMA, tau 5 s);
    ``segments``: ``{"min_duration": 15, "hysteresis": 0.1}`` (None = those defaults);
    ``rules``: alert rules (see ``alerts.validate_rules``; genres ``labels`` lack never match);
    ``uncertain_threshold``: the model's calibrated threshold (None = never uncertain).
    Bad settings raise ``ValueError`` subclasses with a readable message.
    """

    def __init__(self, labels, smoothing: dict | None = None, segments: dict | None = None,
                 rules: list | None = None, uncertain_threshold: float | None = None):
        self.labels = [str(x) for x in labels]
        self.uncertain_threshold = uncertain_threshold
        segments = dict(segments or {})
        check_segment_keys(segments)
        self.smoother = make_smoother(smoothing)
        self.tracker = SegmentTracker(self.labels, uncertain_threshold=uncertain_threshold, **segments)
        self.alerts = AlertEvaluator(rules or [], self.labels)
        self._smoothed: np.ndarray | None = None  # the last music window's smoothed probabilities

    def process(self, w: ClassifiedWindow) -> tuple[ClassifiedWindow, list[tuple[str, dict]]]:
        """One classified window → (the window with this monitor's view filled in,
        [("segment", {...}), ("alert", {...}), ...]).

        A window that is not music (speech, silence, noise) leaves the smoothed genre where
        it was (``smoothed`` repeats it, ``smoothed_top`` is None) and counts for its
        content's segment and rules."""
        raw = np.asarray(w.probs, dtype=np.float64)
        if w.is_music:
            smoothed = self.smoother.update(w.t, raw)
            self._smoothed = smoothed
            top = self.labels[int(np.argmax(smoothed))]
            seg_events = self.tracker.update(w.t, w.wall, smoothed, raw=raw)
        else:
            smoothed = self._smoothed if self._smoothed is not None else raw
            top = None
            conf = w.content_probs.get(w.content, 1.0)
            seg_events = self.tracker.update(w.t, w.wall, smoothed, content=w.content, content_confidence=conf)
        alerts = self.alerts.update(w.t, w.wall, top, smoothed, w.level_db, self.labels, content=w.content)
        uncertain = top is not None and self.uncertain_threshold is not None and smoothed.max() < self.uncertain_threshold
        events = [("segment", {"source": w.source, **e["segment"], "event": e["event"]}) for e in seg_events]
        events += [("alert", {"source": w.source, **a}) for a in alerts]
        return w.monitored(smoothed, top, uncertain, self.tracker.current()), events

    def finish(self, source: str | None = None) -> list[tuple[str, dict]]:
        """The source stopped: close its open segment; the smoother starts afresh."""
        self.smoother.reset()
        self._smoothed = None
        return [("segment", {"source": source, **e["segment"], "event": e["event"]})
                for e in self.tracker.finish()]


def validate_monitoring(smoothing: dict | None = None, segments: dict | None = None) -> None:
    """Raise ``ValueError`` with a readable message unless both settings are usable."""
    if smoothing is not None:
        make_smoother(smoothing)
    if segments is not None:
        if not isinstance(segments, dict):
            raise ValueError('segments must be an object like {"min_duration": 15, "hysteresis": 0.1}')
        check_segment_keys(segments)
        try:
            SegmentTracker(["a", "b"], **segments)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
