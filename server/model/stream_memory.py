"""The previous window of each live stream, to reuse the work consecutive windows share.

Live windows of one stream (hop 1 s, window 3 s) share most of their frames. A
stage that remembers its last window's input rows and outputs can tell, row by
row, which rows of the new window it has already seen (``overlap``) and take
their outputs instead of recomputing them. Rows are compared bit for bit, so a
stream that jumps, restarts or changes simply recomputes.

When a source stops, ``release_streams`` drops its streams from every memory in the
process (and hands the freed heap back to the OS), so a stopped source costs nothing.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Callable, NamedTuple

import numpy as np

from .. import heap

# Streams remembered; the least recently used is forgotten first. Live windows visit the
# streams in turn, so with more streams than this nothing would be reused at all: it must
# exceed the sources one process runs (≈ 0.45 MB per stream and backbone when full).
MAX_STREAMS = 256


class Remembered(NamedTuple):
    first: int          # index of the window's first frame on its stream's frame grid
    rows: np.ndarray    # the stage's input rows
    out: np.ndarray     # the stage's outputs for them
    extra: object       # anything else the stage keeps (e.g. the gain in use)


_memories: "weakref.WeakSet[StreamMemory]" = weakref.WeakSet()
_memories_lock = threading.Lock()


class StreamMemory:
    """An LRU of the last window per stream key. Its stage calls it from one thread;
    ``release_streams`` may drop keys from another."""

    def __init__(self, max_streams: int = MAX_STREAMS):
        self.max_streams = max_streams
        self._last: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        with _memories_lock:
            _memories.add(self)

    def get(self, key) -> Remembered | None:
        if key is None:
            return None
        with self._lock:
            return self._last.get(key)

    def remember(self, key, first: int, rows: np.ndarray, out: np.ndarray, extra=None) -> None:
        item = Remembered(int(first), rows.copy(), out.copy(), extra)
        with self._lock:
            self._last[key] = item
            self._last.move_to_end(key)
            while len(self._last) > self.max_streams:
                self._last.popitem(last=False)

    def keys(self) -> list:
        """The stream keys remembered now, least recently used first."""
        with self._lock:
            return list(self._last)

    def forget(self, match: Callable[[object], bool]) -> int:
        """Drop the streams whose key ``match`` accepts; return how many."""
        with self._lock:
            gone = [k for k in self._last if match(k)]
            for k in gone:
                del self._last[k]
        return len(gone)

    @staticmethod
    def overlap(prev: Remembered, first: int, rows: np.ndarray, max_shift: int) -> tuple[int, np.ndarray] | None:
        """``(d, same)``: the window starts ``d`` frames after ``prev`` (0 ≤ d < ``max_shift``)
        and ``same[i]`` says row ``i`` equals ``prev``'s row ``i + d``; None when they do not overlap."""
        d = first - prev.first
        if not 0 <= d < max_shift:
            return None
        n = rows.shape[0] - d
        return d, np.all(prev.rows[d:d + n] == rows[:n], axis=1)


def remembered_streams() -> list:
    """Every stream key remembered by any memory of this process (a key once per memory)."""
    with _memories_lock:
        memories = list(_memories)
    return [k for m in memories for k in m.keys()]


def release_streams(match: Callable[[object], bool], trim: bool = True) -> int:
    """Drop the streams whose key ``match`` accepts from every memory of this process (a source
    stopped); return how many. With ``trim``, the freed heap goes back to the OS where the C
    library allows (a few ms: not for every stream that starts afresh)."""
    with _memories_lock:
        memories = list(_memories)
    n = sum(m.forget(match) for m in memories)
    if n and trim:
        heap.trim()
    return n
