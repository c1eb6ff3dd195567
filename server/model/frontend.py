"""musicnn's timbral front-end, computing each frame once in live streams.

The timbral branch — (7 x 38) and (7 x 67) convolutions over the input, ReLU,
batch norm, max over frequency — is most of the network's work, and each of
its output frames depends only on 7 input frames. Consecutive live windows
(hop 1 s, window 3 s) share two thirds of their frames, so a frame whose 7
input rows are bit-identical to those of the stream's previous window is taken
from that window instead of being recomputed. Reuse is checked on the input
rows themselves, so a stream that jumps, restarts or renormalises simply
recomputes: the output never depends on the cache, only the cost does.

The maps of runs of consecutive frames come from a ``run`` function (the
``timbral`` onnxruntime graph of ``onnx_graphs``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .musicnn import BN_EPSILON, N_FRAMES, TIMBRAL_DIM
from .stream_memory import StreamMemory

CONTEXT = 3  # input frames on each side of an output frame (7-frame filters)


def input_norm(model) -> tuple[float, float]:
    """``(scale, shift)`` of the network's input batch norm (one channel) in a built Keras port."""
    gamma, beta, mean, var = (float(v[0]) for v in model.get_layer("batch_normalization").get_weights())
    scale = gamma / np.sqrt(var + BN_EPSILON)
    return scale, beta - mean * scale


def _ranges(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges where ``mask`` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


class TimbralFrontEnd:
    """``frontend(mel (B,187,96), streams)`` → timbral maps (B,187,408), as the Keras port computes them.

    ``norm``: the input batch norm's ``(scale, shift)``; ``run(x (n, L+6, 96))`` →
    maps ``(n, L, 408)`` of frames whose 3 rows of context each side are in ``x``
    (after the input norm; zeros outside the window). ``streams`` is None or one
    ``(key, first_frame)`` per window (or None for a window outside any stream):
    ``first_frame`` is the index of the window's first frame on its stream's frame
    grid. Not thread-safe: one caller at a time.
    """

    def __init__(self, norm: tuple[float, float], run: Callable[[np.ndarray], np.ndarray]):
        self.scale, self.shift = np.float32(norm[0]), np.float32(norm[1])
        self.run = run
        self._memory = StreamMemory()  # per stream: the last window's normalised input and timbral maps
        self.frames_computed = 0
        self.frames_reused = 0

    def __call__(self, mel: np.ndarray, streams=None) -> np.ndarray:
        x = mel * self.scale + self.shift  # the input batch norm (one channel)
        out = np.empty((x.shape[0], N_FRAMES, TIMBRAL_DIM), np.float32)
        todo: list[tuple[int, int, int]] = []  # (window, first frame, end frame) to compute
        for b in range(x.shape[0]):
            key, first = (None, 0) if streams is None or streams[b] is None else streams[b]
            needed = self._reuse(key, first, x[b], out[b])
            todo.extend((b, lo, hi) for lo, hi in _ranges(needed))
        if todo:
            self._compute(x, todo, out)
        if streams is not None:
            for b, item in enumerate(streams):
                if item is not None and item[0] is not None:
                    self._memory.remember(item[0], item[1], x[b], out[b])
        return out

    def _reuse(self, key, first: int, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Copy reusable frames into ``out``; return the mask of frames still to compute."""
        needed = np.ones(N_FRAMES, bool)
        prev = self._memory.get(key)
        found = prev and StreamMemory.overlap(prev, first, x, N_FRAMES - 2 * CONTEXT)
        if not found:
            return needed
        d, same = found  # rows equal in both windows
        # Frame t needs rows t-3..t+3 equal, and to be interior (no zero padding) in both windows.
        run = np.convolve(same, np.ones(2 * CONTEXT + 1, int), mode="valid") == 2 * CONTEXT + 1
        ok = np.zeros(N_FRAMES, bool)
        ok[CONTEXT:CONTEXT + run.size] = run
        ok[N_FRAMES - CONTEXT - d:] = False
        if ok.any():
            t = np.flatnonzero(ok)
            out[t] = prev.out[t + d]
            self.frames_reused += t.size
        needed[ok] = False
        return needed

    def _compute(self, x: np.ndarray, todo: list[tuple[int, int, int]], out: np.ndarray) -> None:
        padded = np.pad(x, ((0, 0), (CONTEXT, CONTEXT), (0, 0)))  # zeros after the input norm, as the port
        self.frames_computed += sum(hi - lo for _, lo, hi in todo)
        by_length: dict[int, list[tuple[int, int, int]]] = {}
        for item in todo:  # runs of equal length (a batch's edge frames) go in one call
            by_length.setdefault(item[2] - item[1], []).append(item)
        for length, items in by_length.items():
            # At most a window's worth of frames per call: the convolution's output
            # (~50 KB a frame) then stays in cache, which bigger calls lose.
            step = max(1, N_FRAMES // length)
            for i in range(0, len(items), step):
                chunk = items[i:i + step]
                maps = self.run(np.stack([padded[b, lo:hi + 2 * CONTEXT] for b, lo, hi in chunk]))
                for (b, lo, hi), m in zip(chunk, maps):
                    out[b, lo:hi] = m
