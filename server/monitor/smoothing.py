"""Smoothing of per-window genre probabilities over time.

Every smoother takes ``update(t, probs)`` with the stream time ``t`` (s) of the
window and its probabilities, and returns smoothed probabilities summing to 1.
A jump in ``t`` larger than ``max_gap`` (a stream that reconnected, a paused
file) or backwards (a restarted stream) resets the state: smoothing across a
break would mix unrelated music.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from ..config import MAX_GAP_SECONDS

DEFAULT_TAU_S = 5.0
DEFAULT_MEDIAN_N = 5
DEFAULT_SMOOTHING = {"kind": "ema", "tau": DEFAULT_TAU_S}
KINDS = ("ema", "median", "none")


class SmoothingError(ValueError):
    """A smoothing setting that cannot be used; the message says why."""


def _as_probs(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if p.size == 0 or not np.all(np.isfinite(p)):
        raise SmoothingError("probabilities must be a non-empty list of finite numbers")
    return p


def _normalise(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, None)
    s = p.sum()
    return p / s if s > 0 else np.full_like(p, 1.0 / p.size)


def _positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SmoothingError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise SmoothingError(f"{name} must be a positive number, got {value!r}")
    return v


class _Smoother:
    kind = "none"

    def __init__(self, max_gap: float = MAX_GAP_SECONDS):
        self.max_gap = _positive(max_gap, "max_gap")
        self._last_t: float | None = None

    def _breaks(self, t: float, p: np.ndarray, size: int | None) -> bool:
        """True when the new window cannot continue the current state."""
        last, self._last_t = self._last_t, t
        return last is None or t < last or t - last > self.max_gap or size != p.size

    def reset(self) -> None:
        self._last_t = None

    def describe(self) -> dict:
        return {"kind": self.kind}


class NoSmoother(_Smoother):
    """Identity (renormalised copy), for ``{"kind": "none"}``."""

    def update(self, t: float, probs) -> np.ndarray:
        return _normalise(_as_probs(probs))


class EmaSmoother(_Smoother):
    """Exponential moving average with time constant ``tau_seconds``.

    The weight of a new window is ``1 - exp(-dt / tau)``, so the response in
    seconds is the same whatever the hop, and a skipped window counts for its
    real time step.
    """

    kind = "ema"

    def __init__(self, tau_seconds: float = DEFAULT_TAU_S, max_gap: float = MAX_GAP_SECONDS):
        super().__init__(max_gap)
        self.tau = _positive(tau_seconds, "tau (seconds)")
        self._state: np.ndarray | None = None

    def update(self, t: float, probs) -> np.ndarray:
        p = _as_probs(probs)
        last = self._last_t
        if self._breaks(float(t), p, None if self._state is None else self._state.size):
            self._state = p.copy()
        else:
            alpha = 1.0 - math.exp(-(float(t) - last) / self.tau)
            self._state += alpha * (p - self._state)
        return _normalise(self._state.copy())

    def reset(self) -> None:
        super().reset()
        self._state = None

    def describe(self) -> dict:
        return {"kind": "ema", "tau": self.tau}


class MedianSmoother(_Smoother):
    """Per-class median over the last ``n`` windows, renormalised to sum 1.

    Unlike the EMA, one outlier window never moves the result while n >= 3.
    """

    kind = "median"

    def __init__(self, n: int = DEFAULT_MEDIAN_N, max_gap: float = MAX_GAP_SECONDS):
        super().__init__(max_gap)
        if isinstance(n, bool) or not isinstance(n, (int, float, np.integer)) or not float(n).is_integer():
            raise SmoothingError(f"n (windows) must be a whole number, got {n!r}")
        if n < 1:
            raise SmoothingError(f"n (windows) must be at least 1, got {n!r}")
        self.n = int(n)
        self._buf: deque[np.ndarray] = deque(maxlen=self.n)

    def update(self, t: float, probs) -> np.ndarray:
        p = _as_probs(probs)
        if self._breaks(float(t), p, self._buf[-1].size if self._buf else None):
            self._buf.clear()
        self._buf.append(p)
        stack = np.stack(self._buf)
        med = np.median(stack, axis=0)
        if med.sum() <= 0:  # e.g. three windows each sure of a different genre
            med = stack.mean(axis=0)
        return _normalise(med)

    def reset(self) -> None:
        super().reset()
        self._buf.clear()

    def describe(self) -> dict:
        return {"kind": "median", "n": self.n}


def make_smoother(spec: dict | None = None, max_gap: float = MAX_GAP_SECONDS) -> _Smoother:
    """Smoother from a settings dict: ``{"kind": "ema", "tau": 5}``, ``{"kind": "median", "n": 5}``
    or ``{"kind": "none"}``; ``None`` gives the default (EMA, tau 5 s)."""
    if spec is None:
        spec = DEFAULT_SMOOTHING
    if not isinstance(spec, dict):
        raise SmoothingError(f"smoothing must be an object like {{'kind': 'ema', 'tau': 5}}, got {spec!r}")
    kind = spec.get("kind")
    allowed = {"ema": {"kind", "tau"}, "median": {"kind", "n"}, "none": {"kind"}}
    if kind not in allowed:
        raise SmoothingError(f"unknown smoothing kind {kind!r}; use one of: {', '.join(KINDS)}")
    extra = set(spec) - allowed[kind]
    if extra:
        raise SmoothingError(
            f"unknown setting(s) for {kind} smoothing: {', '.join(sorted(map(str, extra)))}"
            f" (allowed: {', '.join(sorted(allowed[kind] - {'kind'})) or 'none'})"
        )
    if kind == "ema":
        return EmaSmoother(spec.get("tau", DEFAULT_TAU_S), max_gap=max_gap)
    if kind == "median":
        return MedianSmoother(spec.get("n", DEFAULT_MEDIAN_N), max_gap=max_gap)
    return NoSmoother(max_gap=max_gap)
