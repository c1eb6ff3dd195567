"""What the content decision (music / speech / silence / noise) adds to a window.

The decision reuses the backbone outputs the genre head already has, so its cost is the
window's level (the silence rule), the content head (standardise, one dense layer) and
the decision itself, timed one window at a time, against the whole window for scale.
"""

from __future__ import annotations

import time

import numpy as np

from .common import stats_ms


def measure(model, repeats: int = 200) -> dict:
    from server.model.content import default_head, window_level_db
    from server.model.genre_model import backbone_features
    from server.model.level import normalize_level
    from server.stream.features import window_mel

    from .window_cost import windows_16k

    head = default_head()
    if head is None:
        return {"installed": False}
    mel = window_mel(windows_16k(1)[0])[None]
    outputs = backbone_features(normalize_level(mel), head.backbones, level_norm=False)
    level, decide, whole = [], [], []
    model.analyse(mel)  # warm up
    for _ in range(repeats):
        t0 = time.perf_counter()
        lv = window_level_db(mel)
        t1 = time.perf_counter()
        head.decide(head.probabilities(outputs), lv)
        t2 = time.perf_counter()
        level.append(t1 - t0)
        decide.append(t2 - t1)
    for _ in range(max(5, repeats // 20)):
        t0 = time.perf_counter()
        model.analyse(mel)
        whole.append(time.perf_counter() - t0)
    added = np.array(level) + np.array(decide)
    return {"installed": True, "level_ms": stats_ms(level), "head_ms": stats_ms(decide),
            "added_ms": stats_ms(list(added)), "window_ms": stats_ms(whole),
            "share_of_window": round(float(np.median(added) / np.median(whole)), 5)}
