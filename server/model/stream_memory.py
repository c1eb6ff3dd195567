"""The previous window of each live stream, to reuse the work consecutive windows share.

Live windows of one stream (hop 1 s, window 3 s) share most of their frames. A
stage that remembers its last window's input rows and outputs can tell, row by
row, which rows of the new window it has already seen (``overlap``) and take
their outputs instead of recomputing them. Rows are compared bit for bit, so a
stream that jumps, restarts or changes simply recomputes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

# Streams remembered; the least recently used is forgotten first. Live windows visit the
# streams in turn, so with more streams than this nothing would be reused at all: it must
# exceed the sources one process runs (≈ 0.45 MB per stream and backbone when full).
MAX_STREAMS = 256


class Remembered(NamedTuple):
    first: int          # index of the window's first frame on its stream's frame grid
    rows: np.ndarray    # the stage's input rows
    out: np.ndarray     # the stage's outputs for them
    extra: object       # anything else the stage keeps (e.g. the gain in use)


class StreamMemory:
    """An LRU of the last window per stream key; one caller at a time."""

    def __init__(self, max_streams: int = MAX_STREAMS):
        self.max_streams = max_streams
        self._last: OrderedDict = OrderedDict()

    def get(self, key) -> Remembered | None:
        return self._last.get(key) if key is not None else None

    def remember(self, key, first: int, rows: np.ndarray, out: np.ndarray, extra=None) -> None:
        self._last[key] = Remembered(int(first), rows.copy(), out.copy(), extra)
        self._last.move_to_end(key)
        while len(self._last) > self.max_streams:
            self._last.popitem(last=False)

    @staticmethod
    def overlap(prev: Remembered, first: int, rows: np.ndarray, max_shift: int) -> tuple[int, np.ndarray] | None:
        """``(d, same)``: the window starts ``d`` frames after ``prev`` (0 ≤ d < ``max_shift``)
        and ``same[i]`` says row ``i`` equals ``prev``'s row ``i + d``; None when they do not overlap."""
        d = first - prev.first
        if not 0 <= d < max_shift:
            return None
        n = rows.shape[0] - d
        return d, np.all(prev.rows[d:d + n] == rows[:n], axis=1)
