"""Tolerances for float32 results that reach the same values along different kernel paths.

Another batch size, oneDNN vs onnxruntime vs XNNPACK vs numpy, AVX2 vs AVX-512 kernels,
frames reused or recomputed: each does the same sums in another order, and a float32
sum of n terms then differs by about eps32 * sqrt(n) times the size of its terms. So a
difference scales with the values, not with a fixed absolute number: 1e-4 is 1.4e-6 of
a max-pool of 73 (13 ulps; oneDNN's AVX-512 kernels differ from the original by 25)
but 10 % of a tag of 0.001. ``f32_tol`` is ``K * eps32 * sqrt(n) * scale``, with ``scale`` the largest
|value| of the reference output (the layer's scale) and ``n`` the sums along the
computation's longest chain. K = 4 leaves ~10x headroom over the largest difference
measured (oneDNN's AVX-512 and AVX2 kernels, Eigen, XNNPACK, onnxruntime, any batch size),
while one layer's kernel 0.1 % off, or tag biases 1e-3 off, exceed it 2-50x
(tests/test_musicnn_port.py perturbs weights to prove the comparison still fails).

Tags are sigmoids of logits, so they get a quarter (the sigmoid's largest slope) of the
logits' tolerance; where users see results (top tags, the genre picked) the decisions
are compared too, with ties closer than the tolerance allowed to swap.
"""

from __future__ import annotations

import numpy as np

from server.model import musicnn

EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7
K = 4.0

# Sums along musicnn's longest chain, log-mel patch to output: the wide timbral conv
# (7 x 67 taps), the first mid-end conv (7 x 561 channels), the two residual ones
# (7 x 64), the dense layers (2 x 753 pooled values, 200 embedding values).
TIMBRAL_TERMS = 7 * max(musicnn.TIMBRAL_WIDTHS)
MUSICNN_TERMS = (TIMBRAL_TERMS + 7 * (musicnn.TIMBRAL_DIM + 3 * 51) + 2 * 7 * 64
                 + 2 * musicnn.POOL_DIM + musicnn.EMBEDDING_DIM)
# A log-mel frame: a 512-point DFT, then a mel filter over up to 257 power bins.
LOG_MEL_TERMS = 512 + 257

# Genre probabilities out of a head: no float32 bound (the head's gain is learned), but
# a difference below 0.1 % changes nothing anyone sees; the picked genre is checked too.
DECISION_TOL = 1e-3


def f32_tol(reference, n: int, k: float = K) -> float:
    """``k * eps32 * sqrt(n) * max|reference|``: the float32 error of n-term sums at that scale."""
    scale = float(np.max(np.abs(reference))) if np.size(reference) else 0.0
    return k * EPS32 * float(np.sqrt(n)) * scale


def logits(tags) -> np.ndarray:
    """The logits of sigmoid outputs (clipped where float32 saturates at 0 or 1)."""
    t = np.clip(np.asarray(tags, np.float64), EPS32 / 2, 1 - EPS32 / 2)
    return np.log(t) - np.log1p(-t)


def tags_tol(reference_tags, n: int = MUSICNN_TERMS, k: float = K) -> float:
    """Tolerance of sigmoid tags: a quarter (the sigmoid's top slope) of their logits' tolerance."""
    return 0.25 * f32_tol(logits(reference_tags), n, k)


def output_tol(key: str, reference, n: int = MUSICNN_TERMS, k: float = K) -> float:
    """Tolerance of a backbone output (``tags`` or a linear one: embedding, pools, maps)."""
    return tags_tol(reference, n, k) if key == "tags" else f32_tol(reference, n, k)


def assert_f32_close(got, want, tol: float, what: str = "") -> float:
    """Same shape and max |got - want| <= tol; returns the difference. The message says how far."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    diff = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    assert diff <= tol, (f"{what}: max abs diff {diff:.3g} > tolerance {tol:.3g} "
                         f"(scale {scale:.3g}, {diff / max(scale, 1e-30):.2g} of it)")
    return diff


def assert_outputs_close(got: dict, want: dict, keys=None, n: int = MUSICNN_TERMS, what: str = "") -> dict:
    """Backbone outputs (dicts of arrays) within their float32 tolerances; returns the differences."""
    keys = list(want) if keys is None else keys
    return {key: assert_f32_close(got[key], want[key], output_tol(key, want[key], n), f"{what} {key}".strip())
            for key in keys}


def assert_same_ranking(got, want, top: int, tol: float, what: str = "") -> None:
    """Each row's ``top`` largest values rank the same, except values of ``want`` tied within 2 * tol.

    The i-th pick by ``got`` must be worth (in ``want``) the i-th largest value of ``want``.
    """
    got, want = np.atleast_2d(got), np.atleast_2d(want)
    for r, (g, w) in enumerate(zip(got, want)):
        picked = w[np.argsort(-g, kind="stable")[:top]]
        best = np.sort(w)[::-1][:top]
        gap = np.abs(picked - best).max()
        assert gap <= 2 * tol, (f"{what} row {r}: top {top} picks {np.argsort(-g, kind='stable')[:top].tolist()}, "
                                f"want {np.argsort(-w, kind='stable')[:top].tolist()} (values apart by {gap:.3g})")
