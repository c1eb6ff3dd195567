"""Events → history rows: what the history keeps of a window, a segment, an alert and the source list.

Each function raises (``KeyError``, ``ValueError``, ``TypeError``) on an event it cannot use;
the writer counts that event as an error and drops it alone.
"""

from __future__ import annotations

import json
import math
import time

from ..monitor.classified import ClassifiedWindow
from .history_sql import AlertRow, SegmentRow, SourceRow, WindowRow

# Fields of a source description kept as its "spec" (the rest are live counters).
_SPEC_SKIP = {"id", "state", "error", "notice", "overflows", "skipped", "windows", "reconnects"}


def _num(x) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _int(x) -> int | None:
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def _text(x) -> str | None:
    """Text for a TEXT column; PostgreSQL refuses NUL characters, so they go."""
    if x is None:
        return None
    return (x if isinstance(x, str) else str(x)).replace("\0", "")


def _rounded(values) -> list[float]:
    return [round(float(x), 5) for x in values]


def window_row(w: ClassifiedWindow) -> WindowRow:
    """The row of one classified window."""
    labels = list(w.labels)
    probs = _rounded(w.probs)
    if len(probs) != len(labels):
        raise ValueError(f"{len(probs)} probs for {len(labels)} labels")
    wall = _num(w.wall)
    if wall is None:
        raise ValueError(f"wall {w.wall!r} is not a time")
    confidence = None if w.confidence is None else round(w.confidence, 5)
    return WindowRow(
        source=_text(w.source), wall=wall, t=_num(w.t), model=_text(w.model), top=_text(w.top),
        confidence=_num(confidence), uncertain=int(w.uncertain),
        labels=json.dumps([_text(x) for x in labels]), probs=json.dumps(probs),
        smoothed=None if w.smoothed is None else json.dumps(_rounded(w.smoothed)),
        level_db=_num(w.level_db), content=_text(w.content))


def segment_row(payload: dict) -> SegmentRow:
    seg = payload["segment"] if isinstance(payload.get("segment"), dict) else payload
    return SegmentRow(
        source=_text(payload["source"]),
        start_wall=round(float(seg["start_wall"]), 3),  # the upsert key: rounded the same way every time
        end_wall=_num(seg.get("end_wall")), start_t=_num(seg.get("start")), end_t=_num(seg.get("end")),
        genre=_text(seg.get("genre")), mean_confidence=_num(seg.get("mean_confidence")),
        windows=int(seg.get("windows") or 0), open=int(bool(seg.get("open"))))


def alert_row(payload: dict) -> AlertRow:
    p = payload
    return AlertRow(
        source=_text(p["source"]), wall=float(p["wall"]), t=_num(p.get("t")), rule=_int(p.get("rule")),
        type=_text(p.get("type")), state=_text(p.get("state")), message=_text(p.get("message")),
        payload=_text(json.dumps(p, default=str)))


def source_rows(payload: dict) -> list[SourceRow]:
    """One row per source in a ``sources`` event, seen now."""
    now = time.time()
    return [SourceRow(id=_text(s["id"]), kind=_text(s.get("kind")), label=_text(s.get("label")),
                      spec=_text(json.dumps({k: v for k, v in s.items() if k not in _SPEC_SKIP}, default=str)),
                      first_seen=now, last_seen=now)
            for s in payload.get("sources") or []]
