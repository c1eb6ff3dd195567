"""Smoothing of window probabilities: EMA time constant, uneven steps, median, specs."""

import math

import numpy as np
import pytest

from server.monitor.smoothing import (EmaSmoother, MedianSmoother, NoSmoother, SmoothingError,
                                      make_smoother)

A = np.array([1.0, 0.0, 0.0])
B = np.array([0.0, 1.0, 0.0])


def test_ema_step_response_has_the_time_constant():
    s = EmaSmoother(tau_seconds=10.0)
    s.update(0.0, A)
    out = None
    for k in range(1, 11):  # a step to B, 1-s hops, for exactly one tau
        out = s.update(float(k), B)
    assert out[1] == pytest.approx(1 - math.exp(-1), abs=1e-9)
    assert out.sum() == pytest.approx(1.0)
    for k in range(11, 101):
        out = s.update(float(k), B)
    assert out[1] > 0.9999


def test_ema_weight_follows_the_real_time_step():
    """Uneven hops (or a skipped window) reach the same state as even ones for the same time."""
    even, uneven = EmaSmoother(5.0), EmaSmoother(5.0)
    even.update(0.0, A)
    uneven.update(0.0, A)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
        e = even.update(t, B)
    for t in (0.5, 3.0, 6.0):  # irregular, with a 2.5-s and a 3-s step
        u = uneven.update(t, B)
    np.testing.assert_allclose(u, e, atol=1e-12)
    assert e[1] == pytest.approx(1 - math.exp(-6 / 5))


def test_ema_resets_after_a_gap_or_a_restart():
    s = EmaSmoother(10.0)
    s.update(0.0, A)
    s.update(1.0, A)
    np.testing.assert_allclose(s.update(100.0, B), B)  # 99-s gap: a reconnected stream
    s.update(101.0, A)
    np.testing.assert_allclose(s.update(3.0, A), A)  # time went back: a restarted stream
    s.reset()
    np.testing.assert_allclose(s.update(4.0, B), B)


def test_median_removes_a_single_outlier_window():
    base = np.array([0.7, 0.2, 0.1])
    outlier = np.array([0.05, 0.9, 0.05])
    s = MedianSmoother(5)
    outs = [s.update(float(t), outlier if t == 3 else base) for t in range(8)]
    for out in outs[2:]:  # once three windows are in, the outlier never wins
        assert int(np.argmax(out)) == 0
        assert out.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(outs[3], base / base.sum())  # median of 3 base + 1 outlier


def test_median_of_disagreeing_windows_still_sums_to_one():
    s = MedianSmoother(3)
    s.update(0, [1, 0, 0])
    s.update(1, [0, 1, 0])
    out = s.update(2, [0, 0, 1])  # every per-class median is 0: falls back to the mean
    np.testing.assert_allclose(out, [1 / 3] * 3)


def test_make_smoother_specs():
    assert isinstance(make_smoother({"kind": "ema", "tau": 10}), EmaSmoother)
    assert make_smoother({"kind": "ema", "tau": 10}).tau == 10.0
    assert make_smoother({"kind": "median", "n": 5}).n == 5
    assert isinstance(make_smoother({"kind": "none"}), NoSmoother)
    assert make_smoother(None).describe() == {"kind": "ema", "tau": 5.0}
    np.testing.assert_allclose(make_smoother({"kind": "none"}).update(0, [2, 1, 1]), [0.5, 0.25, 0.25])


@pytest.mark.parametrize("spec, words", [
    ({"kind": "gauss"}, "unknown smoothing kind 'gauss'"),
    ({"tau": 3}, "unknown smoothing kind None"),
    ({"kind": "ema", "tau": 0}, "tau (seconds) must be a positive number"),
    ({"kind": "ema", "tau": "fast"}, "tau (seconds) must be a number"),
    ({"kind": "median", "n": 0}, "n (windows) must be at least 1"),
    ({"kind": "median", "n": 2.5}, "must be a whole number"),
    ({"kind": "ema", "n": 5}, "unknown setting(s) for ema smoothing: n"),
    ("ema", "smoothing must be an object"),
])
def test_bad_specs_have_clear_messages(spec, words):
    with pytest.raises(SmoothingError) as err:
        make_smoother(spec)
    assert words in str(err.value)
    assert isinstance(err.value, ValueError)


def test_bad_probabilities_are_rejected():
    with pytest.raises(SmoothingError, match="finite numbers"):
        EmaSmoother(5).update(0, [0.5, float("nan")])
