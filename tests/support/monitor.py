"""Synthetic window probabilities for the monitor tests: a plan of genres over time,
3-s windows every hop, softmax of noisy logits, optional outlier windows."""

import numpy as np

from server.config import GTZAN_GENRES, WINDOW_SECONDS

LABELS = list(GTZAN_GENRES)
WALL0 = 1_763_800_000.0


def genre_windows(plan, hop=1.0, strength=2.5, noise=0.5, outliers=(), seed=0, quiet=None):
    """Yield ``(t, wall, probs)`` for ``plan`` = [(genre, seconds), ...].

    A window ending at t covers [t-3, t]; its logits mix the plan's genres in proportion
    to their share of the window, as a real classifier straddling a change would.
    ``outliers``: window times whose top is forced to a random other genre.
    ``quiet``: a genre name meaning "nobody is sure" (flat logits).
    """
    rng = np.random.default_rng(seed)
    bounds, t0 = [], 0.0
    for genre, seconds in plan:
        bounds.append((genre, t0, t0 + seconds))
        t0 += seconds
    outliers = set(round(x, 3) for x in outliers)
    t = WINDOW_SECONDS
    while t <= t0 + 1e-9:
        logits = rng.normal(0.0, noise, len(LABELS))
        for genre, a, b in bounds:
            share = max(0.0, min(b, t) - max(a, t - WINDOW_SECONDS)) / WINDOW_SECONDS
            if share and genre != quiet:
                logits[LABELS.index(genre)] += strength * share
        if round(t, 3) in outliers:
            logits[rng.integers(len(LABELS))] += 3 * strength
        p = np.exp(logits - logits.max())
        yield round(t, 3), WALL0 + t, p / p.sum()
        t = round(t + hop, 6)
