"""A fixed-capacity ring buffer of float32 samples between one writer and readers.

The capture callback writes; the worker reads the newest window. Positions are
absolute sample counts since the stream began, so a reader can tell exactly
which samples it gets and how many it missed.
"""

from __future__ import annotations

import threading

import numpy as np


class RingBuffer:
    """Keeps the newest ``capacity`` samples; older ones are overwritten."""

    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, dtype=np.float32)
        self._written = 0
        # Held only for a memcpy, so the capture callback never waits on anything slow.
        self._lock = threading.Lock()

    @property
    def total_written(self) -> int:
        """Absolute index one past the newest sample."""
        return self._written

    def write(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        n = block.shape[0]
        if n == 0:
            return
        if n >= self.capacity:
            block = block[-self.capacity:]
        with self._lock:
            start = (self._written + n - block.shape[0]) % self.capacity
            first = min(block.shape[0], self.capacity - start)
            self._data[start:start + first] = block[:first]
            self._data[:block.shape[0] - first] = block[first:]
            self._written += n

    def read(self, end: int, n: int) -> np.ndarray:
        """Return the ``n`` samples ending at absolute index ``end``.

        Raises ``IndexError`` when those samples are not (or no longer) in the buffer.
        """
        if n > self.capacity:
            raise ValueError(f"cannot read {n} samples from a ring of {self.capacity}")
        with self._lock:
            written = self._written
            if end > written or end - n < 0 or end - n < written - self.capacity:
                raise IndexError(
                    f"samples [{end - n}, {end}) not in ring (written={written}, capacity={self.capacity})")
            start = (end - n) % self.capacity
            first = min(n, self.capacity - start)
            out = np.empty(n, dtype=np.float32)
            out[:first] = self._data[start:start + first]
            out[first:] = self._data[:n - first]
            return out

    def read_latest(self, n: int) -> tuple[np.ndarray, int]:
        """Return the newest ``n`` samples and the absolute index of their end."""
        end = self._written
        return self.read(end, n), end
