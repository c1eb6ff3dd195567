"""Model windows cut from a stream of 16-kHz blocks, as ``features.window_starts`` cuts a whole signal.

Only the samples of the window being filled are held, so a file of any length costs the
memory of one window plus one block.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from ..config import WINDOW_SAMPLES


class WindowCutter:
    """Iterates ``(start sample, window samples)`` over ``blocks``: full windows every ``hop``
    samples from ``offset``; a stream too short for one yields its first ``WINDOW_SAMPLES``
    samples (or all of them) once, as ``window_starts`` does. ``n_samples`` is the stream's
    length once the iteration has ended."""

    def __init__(self, blocks: Iterable[np.ndarray], hop: int, offset: int = 0, size: int = WINDOW_SAMPLES):
        if hop <= 0 or offset < 0 or size <= 0:
            raise ValueError("hop and size must be positive, offset not negative")
        self._blocks, self.hop, self.offset, self.size = blocks, int(hop), int(offset), int(size)
        self.n_samples: int | None = None

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        buf = np.zeros(0, np.float32)
        base = 0  # stream index of buf[0]
        start = self.offset  # next window's first sample
        emitted = False
        for block in self._blocks:
            buf = np.concatenate([buf, np.asarray(block, dtype=np.float32)])
            while base + buf.size >= start + self.size:
                yield start, buf[start - base:start - base + self.size].copy()
                emitted = True
                start += self.hop
            # Samples before the next window are no longer needed (before the first window,
            # the stream's beginning is kept: a short stream's single window is cut from it).
            if emitted:
                cut = min(start, base + buf.size) - base
                buf, base = buf[cut:], base + cut
        self.n_samples = base + buf.size
        if not emitted:
            yield 0, buf[:self.size].copy()
