"""Genre segments: turn a stream of (smoothed) window probabilities into
"14:02:10–14:05:40 jazz, mean confidence 0.82".

A change of genre is accepted only when the current genre has lost the top
spot for ``min_duration`` seconds and the challenger leads it by at least
``hysteresis``; the new segment is then back-dated to when the current genre
lost the top spot, so the boundary lands near the real change, not
``min_duration`` later. Shorter blips stay inside the current segment.
With ``uncertain_threshold``, windows whose top probability is below it count
as the pseudo-genre ``"uncertain"``, which forms segments like any genre; so do
windows whose content is not music (``"speech"``, ``"silence"``, ``"noise"``,
``model.content``): talk makes ``speech`` segments, and its windows never count
for a genre.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from ..config import MAX_GAP_SECONDS
from ..model.content import MUSIC, NOT_MUSIC

UNCERTAIN = "uncertain"
DEFAULT_MIN_DURATION_S = 15.0
DEFAULT_HYSTERESIS = 0.1
MAX_BACKDATE_S = 20.0
_UNC = -1  # index of the "uncertain" pseudo-genre
# Pseudo-genres below 0: "uncertain", then the contents that are not music.
_PSEUDO = {_UNC: UNCERTAIN, **{-2 - i: c for i, c in enumerate(NOT_MUSIC)}}
_CONTENT_INDEX = {c: i for i, c in _PSEUDO.items()}


class SegmentError(ValueError):
    """Segment settings or input that cannot be used; the message says why."""


class _Win:
    __slots__ = ("t", "wall", "probs", "raw", "top", "content_conf")

    def __init__(self, t, wall, probs, raw, top, content_conf=1.0):
        self.t, self.wall, self.probs, self.raw, self.top = t, wall, probs, raw, top
        self.content_conf = content_conf

    def conf(self, genre: int) -> float:
        """Probability of ``genre`` (for "uncertain": of whatever was top; for a content: the
        window's confidence in it, 0 when the window is something else)."""
        if genre < _UNC:
            return float(self.content_conf) if self.top == genre else 0.0
        return float(self.probs.max() if genre == _UNC else self.probs[genre])


class _Seg:
    __slots__ = ("genre", "start", "start_wall", "conf_sum", "n")

    def __init__(self, genre: int, start: float, start_wall: float):
        self.genre, self.start, self.start_wall = genre, start, start_wall
        self.conf_sum, self.n = 0.0, 0


class _Run:
    """Windows since the current genre lost the top spot (a pending challenge)."""

    __slots__ = ("start", "start_wall", "sum", "music_sum", "max_sum", "n", "n_music", "n_pseudo", "content_sum")

    def __init__(self, w: _Win):
        self.start, self.start_wall = w.t, w.wall
        self.sum = np.zeros_like(w.probs)
        self.music_sum = np.zeros_like(w.probs)  # of the music windows only: who challenges
        self.max_sum, self.n, self.n_music = 0.0, 0, 0
        self.n_pseudo = {i: 0 for i in _PSEUDO}
        self.content_sum = {i: 0.0 for i in _PSEUDO}

    def add(self, w: _Win) -> None:
        self.sum += w.probs
        self.max_sum += float(w.probs.max())
        self.n += 1
        if w.top < 0:
            self.n_pseudo[w.top] += 1
            self.content_sum[w.top] += w.conf(w.top) if w.top < _UNC else 0.0
        if w.top >= _UNC:
            self.music_sum += w.probs
            self.n_music += 1

    def conf_sum(self, genre: int) -> float:
        if genre < _UNC:
            return self.content_sum[genre]
        return self.max_sum if genre == _UNC else float(self.sum[genre])


def _number(value, name: str, lo: float, hi: float = math.inf, lo_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SegmentError(f"{name} must be a number, got {value!r}") from None
    if not (v > lo if lo_open else v >= lo) or not v < hi or math.isnan(v):
        raise SegmentError(f"{name} must be {'>' if lo_open else '>='} {lo:g}"
                           + (f" and < {hi:g}" if hi != math.inf else "") + f", got {value!r}")
    return v


class SegmentTracker:
    """Genre segments of one source; see the module docstring.

    ``update(t, wall, probs, raw=None) -> [{"event": "started"|"closed", "segment": {...}}]``.
    ``raw`` (the unsmoothed probabilities) is optional: with it, the boundary is
    moved back over the windows where the raw probabilities already favoured
    the new genre, undoing the smoother's lag.
    """

    def __init__(self, labels, min_duration: float = DEFAULT_MIN_DURATION_S,
                 hysteresis: float = DEFAULT_HYSTERESIS, uncertain_threshold: float | None = None,
                 max_gap: float = MAX_GAP_SECONDS, max_backdate: float = MAX_BACKDATE_S):
        labels = [str(x) for x in (labels or [])]
        if not labels:
            raise SegmentError("labels must be a non-empty list of genre names")
        if len(set(labels)) != len(labels) or set(labels) & set(_PSEUDO.values()):
            raise SegmentError(f"labels must be unique and must not include "
                               f"{', '.join(map(repr, _PSEUDO.values()))}: {labels}")
        self.labels = labels
        self.min_duration = _number(min_duration, "min_duration (seconds)", 0.0)
        self.hysteresis = _number(hysteresis, "hysteresis", 0.0, 1.0)
        self.uncertain_threshold = None
        if uncertain_threshold is not None:
            self.uncertain_threshold = _number(uncertain_threshold, "uncertain_threshold", 0.0, lo_open=True)
            if self.uncertain_threshold > 1:
                raise SegmentError(f"uncertain_threshold must be a probability (0 to 1), got {uncertain_threshold!r}")
        self.max_gap = _number(max_gap, "max_gap (seconds)", 0.0, lo_open=True)
        self.max_backdate = _number(max_backdate, "max_backdate (seconds)", 0.0)
        self._clear()

    def _clear(self) -> None:
        self._seg: _Seg | None = None
        self._run: _Run | None = None
        self._last: _Win | None = None
        self._recent: deque[_Win] = deque()  # recent windows, for raw back-dating

    # --- input -----------------------------------------------------------------------------------
    def _probs(self, probs, what: str) -> np.ndarray:
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
        if p.size != len(self.labels) or not np.all(np.isfinite(p)):
            raise SegmentError(f"{what} must be {len(self.labels)} finite numbers (one per label), got {p.size}")
        return p

    def _top(self, p: np.ndarray) -> int:
        i = int(np.argmax(p))
        if self.uncertain_threshold is not None and p[i] < self.uncertain_threshold:
            return _UNC
        return i

    def update(self, t: float, wall: float, probs, raw=None, content: str = MUSIC,
               content_confidence: float = 1.0) -> list[dict]:
        """``content`` other than music (``speech``, ``silence``, ``noise``) makes the window
        count for that pseudo-genre, with ``content_confidence``; its ``probs`` are ignored
        beyond their shape (pass the last smoothed ones)."""
        t, wall = float(t), float(wall)
        p = self._probs(probs, "probs")
        r = None if raw is None or content != MUSIC else self._probs(raw, "raw probs")
        if content != MUSIC and content not in _CONTENT_INDEX:
            raise SegmentError(f"unknown content {content!r}; use one of: {MUSIC}, {', '.join(NOT_MUSIC)}")
        events: list[dict] = []
        if self._last is not None and (t < self._last.t or t - self._last.t > self.max_gap):
            events += self.finish()  # a break in the stream ends the segment
        top = self._top(p) if content == MUSIC else _CONTENT_INDEX[content]
        w = _Win(t, wall, p, r, top, float(content_confidence))
        self._last = w
        self._recent.append(w)
        keep = self.min_duration + self.max_backdate + 5.0
        while self._recent and self._recent[0].t < t - keep:
            self._recent.popleft()

        if self._seg is not None and w.top == self._seg.genre:
            self._flush_run()
            self._seg.conf_sum += w.conf(self._seg.genre)
            self._seg.n += 1
            return events
        if self._run is None:
            self._run = _Run(w)
        self._run.add(w)
        challenger = self._challenger()
        if self._accepts(challenger, w):
            events += self._switch(challenger)
        return events

    # --- decisions -------------------------------------------------------------------------------
    def _challenger(self) -> int:
        """The genre that dominated the pending run: a pseudo-genre ("uncertain", "speech", …)
        if most of it was, else the best mean probability of its music windows (other than
        the current genre)."""
        run = self._run
        pseudo = max(run.n_pseudo, key=lambda i: run.n_pseudo[i])
        if run.n_pseudo[pseudo] * 2 > run.n or run.n_music == 0:
            return pseudo
        scores = run.music_sum.copy()
        if self._seg is not None and self._seg.genre >= 0:
            scores[self._seg.genre] = -np.inf
        return int(np.argmax(scores))

    def _accepts(self, x: int, w: _Win) -> bool:
        if w.t - self._run.start < self.min_duration or w.top != x:
            return False
        g = None if self._seg is None else self._seg.genre
        if g is None or g < 0 or x < 0:
            return True  # no margin to beat: the duration decides
        return w.probs[x] - w.probs[g] >= self.hysteresis

    def _flush_run(self) -> None:
        """The current genre is back on top: the pending run was a blip and belongs to it."""
        if self._run is not None:
            self._seg.conf_sum += self._run.conf_sum(self._seg.genre)
            self._seg.n += self._run.n
            self._run = None

    def _switch(self, x: int) -> list[dict]:
        run, old = self._run, self._seg
        new = _Seg(x, run.start, run.start_wall)
        new.conf_sum, new.n = run.conf_sum(x), run.n
        if old is not None and old.genre >= 0 and x >= 0:
            self._backdate(old, new)
        events = []
        if old is not None:
            events.append(self._event("closed", old, new.start, new.start_wall, closed=True))
        self._seg, self._run = new, None
        events.append(self._event("started", new, self._last.t, self._last.wall))
        return events

    def _backdate(self, old: _Seg, new: _Seg) -> None:
        """Move the windows just before the run, where the raw probabilities already
        favoured the new genre, from the old segment to the new one."""
        for w in reversed(self._recent):
            if w.t >= new.start:
                continue
            if (w.raw is None or w.t <= old.start or old.n <= 1 or new.start - w.t > self.max_backdate
                    or w.raw[new.genre] <= w.raw[old.genre]):
                break
            old.conf_sum -= w.conf(old.genre)
            old.n -= 1
            new.conf_sum += w.conf(new.genre)
            new.n += 1
            new.start, new.start_wall = w.t, w.wall

    # --- output ----------------------------------------------------------------------------------
    def _event(self, kind: str, seg: _Seg, end: float, end_wall: float, closed: bool = False,
               extra: tuple[float, int] = (0.0, 0)) -> dict:
        conf_sum, n = seg.conf_sum + extra[0], seg.n + extra[1]
        segment = {
            "genre": _PSEUDO[seg.genre] if seg.genre < 0 else self.labels[seg.genre],
            "start": round(seg.start, 3),
            "end": round(end, 3),
            "start_wall": round(seg.start_wall, 3),
            "end_wall": round(end_wall, 3),
            "mean_confidence": round(conf_sum / n, 4) if n else 0.0,
            "windows": int(n),
            "open": not closed,
        }
        return {"event": kind, "segment": segment}

    def current(self) -> dict | None:
        """The open segment up to the latest window (a pending blip counted in), or None."""
        if self._seg is None:
            return None
        extra = (0.0, 0) if self._run is None else (self._run.conf_sum(self._seg.genre), self._run.n)
        return self._event("open", self._seg, self._last.t, self._last.wall, extra=extra)["segment"]

    def finish(self) -> list[dict]:
        """End of the stream: close the open segment (a stream shorter than ``min_duration``
        still gets one segment) and start afresh."""
        events: list[dict] = []
        if self._run is not None:
            if self._seg is None:
                events += self._switch(self._challenger())
            else:
                self._flush_run()
        if self._seg is not None:
            events.append(self._event("closed", self._seg, self._last.t, self._last.wall, closed=True))
        self._clear()
        return events

    def reset(self) -> None:
        """Forget everything without emitting events."""
        self._clear()
