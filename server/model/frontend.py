"""musicnn's timbral front-end in numpy, computing each frame once in live streams.

The timbral branch — (7 x 38) and (7 x 67) convolutions over the input, ReLU,
batch norm, max over frequency — is ~80 % of the network's work, and each of
its output frames depends only on 7 input frames. Consecutive live windows
(hop 1 s, window 3 s) share two thirds of their frames, so a frame whose 7
input rows are bit-identical to those of the stream's previous window is taken
from that window instead of being recomputed. Reuse is checked on the input
rows themselves, so a stream that jumps, restarts or renormalises simply
recomputes: the output never depends on the cache, only the cost does.

The convolutions run as one im2col matrix product per filter shape (BLAS),
which is faster than a direct convolution on a single input channel.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .musicnn import BN_EPSILON, N_FRAMES, N_MELS, TIMBRAL_DIM, TIMBRAL_FILTERS, TIMBRAL_WIDTHS

CONTEXT = 3  # input frames on each side of an output frame (7-frame filters)
MAX_STREAMS = 256  # streams remembered; the least recently used one is forgotten first


def _bn_affine(gamma, beta, mean, var):
    scale = gamma / np.sqrt(var + BN_EPSILON)
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


def timbral_weights(model) -> dict[str, np.ndarray]:
    """The arrays ``TimbralFrontEnd`` needs, taken from a built Keras port with its weights."""
    out = {}
    out["in_scale"], out["in_shift"] = _bn_affine(*model.get_layer("batch_normalization").get_weights())
    for i, (conv, norm) in enumerate([("conv2d", "batch_normalization_1"), ("conv2d_1", "batch_normalization_2")]):
        kernel, bias = model.get_layer(conv).get_weights()  # (7, w, 1, 204), (204,)
        out[f"kernel_{i}"] = kernel.reshape(-1, TIMBRAL_FILTERS).astype(np.float32)
        out[f"bias_{i}"] = bias.astype(np.float32)
        out[f"scale_{i}"], out[f"shift_{i}"] = _bn_affine(*model.get_layer(norm).get_weights())
    return out


def _ranges(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges where ``mask`` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


class TimbralFrontEnd:
    """``frontend(mel (B,187,96), streams)`` → timbral maps (B,187,408), as the Keras port computes them.

    ``streams`` is None or one ``(key, first_frame)`` per window (``key`` None for
    a window outside any stream): ``first_frame`` is the index of the window's
    first frame on its stream's frame grid. Not thread-safe: one caller at a time.
    """

    def __init__(self, weights: dict[str, np.ndarray], matmul=np.matmul):
        self.w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        # Filters with a positive batch-norm scale first, so max and min each reduce one block.
        self._n_positive, self._restore = [], []
        for i in range(len(TIMBRAL_WIDTHS)):
            order = np.argsort(self.w[f"scale_{i}"] < 0, kind="stable")
            for name in ("kernel", "bias", "scale", "shift"):
                self.w[f"{name}_{i}"] = np.ascontiguousarray(self.w[f"{name}_{i}"][..., order])
            self._n_positive.append(int((self.w[f"scale_{i}"] >= 0).sum()))
            self._restore.append(np.argsort(order))
        self.matmul = matmul
        self._streams: OrderedDict = OrderedDict()  # key -> (first_frame, input rows, timbral maps)
        self.frames_computed = 0
        self.frames_reused = 0

    def forget(self, key) -> None:
        self._streams.pop(key, None)

    def __call__(self, mel: np.ndarray, streams=None) -> np.ndarray:
        x = mel * self.w["in_scale"] + self.w["in_shift"]  # the input batch norm (one channel)
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
                    self._remember(item[0], item[1], x[b], out[b])
        return out

    def _reuse(self, key, first: int, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Copy reusable frames into ``out``; return the mask of frames still to compute."""
        needed = np.ones(N_FRAMES, bool)
        prev = self._streams.get(key) if key is not None else None
        if prev is None:
            return needed
        d = first - prev[0]
        if not 0 <= d < N_FRAMES - 2 * CONTEXT:
            return needed
        same = np.all(prev[1][d:] == x[:N_FRAMES - d], axis=1)  # rows equal in both windows
        # Frame t needs rows t-3..t+3 equal, and to be interior (no zero padding) in both windows.
        run = np.convolve(same, np.ones(2 * CONTEXT + 1, int), mode="valid") == 2 * CONTEXT + 1
        ok = np.zeros(N_FRAMES, bool)
        ok[CONTEXT:CONTEXT + run.size] = run
        ok[N_FRAMES - CONTEXT - d:] = False
        if ok.any():
            t = np.flatnonzero(ok)
            out[t] = prev[2][t + d]
            self.frames_reused += t.size
        needed[ok] = False
        return needed

    def _remember(self, key, first: int, x: np.ndarray, out: np.ndarray) -> None:
        self._streams[key] = (first, x.copy(), out.copy())
        self._streams.move_to_end(key)
        while len(self._streams) > MAX_STREAMS:
            self._streams.popitem(last=False)

    def _compute(self, x: np.ndarray, todo: list[tuple[int, int, int]], out: np.ndarray) -> None:
        padded = np.pad(x, ((0, 0), (CONTEXT, CONTEXT), (0, 0)))  # zeros after the input norm, as the port
        self.frames_computed += sum(hi - lo for _, lo, hi in todo)
        for i, width in enumerate(TIMBRAL_WIDTHS):
            positions = N_MELS - width + 1
            patches = np.concatenate([
                np.lib.stride_tricks.sliding_window_view(padded[b, lo:hi + 2 * CONTEXT], (2 * CONTEXT + 1, width))
                .reshape(-1, (2 * CONTEXT + 1) * width) for b, lo, hi in todo])
            y = self.matmul(patches, self.w[f"kernel_{i}"]).reshape(-1, positions, TIMBRAL_FILTERS)
            # ReLU and max commute, and a batch norm with a negative scale turns the max into
            # a min: the kernel's columns are ordered positive scales first (see __init__).
            n_pos = self._n_positive[i]
            top = np.concatenate([y[:, :, :n_pos].max(axis=1), y[:, :, n_pos:].min(axis=1)], axis=1)
            maps = (np.maximum(top + self.w[f"bias_{i}"], 0.0) * self.w[f"scale_{i}"] + self.w[f"shift_{i}"])
            maps = maps[:, self._restore[i]]
            channels = slice(i * TIMBRAL_FILTERS, (i + 1) * TIMBRAL_FILTERS)
            row = 0
            for b, lo, hi in todo:
                out[b, lo:hi, channels] = maps[row:row + hi - lo]
                row += hi - lo
