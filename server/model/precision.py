"""Which precision the ``fast`` backbones run in: the product's start-up check.

int8 (``quantized``) is faster but lossy, so the product uses it only where it keeps
the loaded model's decisions on this machine: the model predicts the demo tracks'
check windows in float and in int8, and int8 is used when ``compare`` passes. Any
failure (quantiser or demo audio missing, a graph that cannot be built) keeps float.
``GENRE_MONITOR_PRECISION=auto|float|int8`` (default ``auto``): ``float`` skips the
check, ``int8`` uses int8 without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time

import numpy as np

from . import fast, quantized
from .graph_cache import cache_path, find_cached, write_cached

log = logging.getLogger(__name__)

MODES = ("auto",) + fast.PRECISIONS
# What int8 must keep to be used: the float model's top genre on this share of the check
# windows it decides (leads the runner-up by TIE_MARGIN or more; between near-tied genres
# the order is noise in either precision), each window's content (music, speech, silence,
# noise) on this share of all of them, and every genre probability and tag within this
# much of the float model's.
MIN_AGREEMENT = 0.99
TIE_MARGIN = 0.05
MAX_PROB_DIFF = 0.08
MAX_TAG_DIFF = 0.08

# The check runs beside live sources: a few windows at a time, with a pause between, so the
# worker keeps its cores. Its verdict is kept on disk, so a machine checks a model once.
CHECK_VERSION = 2  # bump when what the check compares changes
CHECK_CHUNK = 4
CHECK_PAUSE_S = 0.05

_lock = threading.Lock()
_choice: dict = {"precision": "float", "reason": "no start-up check ran (library default)"}


class PrecisionError(ValueError):
    pass


def mode_from_env() -> str:
    mode = (os.environ.get("GENRE_MONITOR_PRECISION") or "auto").strip().lower()
    if mode not in MODES:
        raise PrecisionError(f"Unknown precision {mode!r} (GENRE_MONITOR_PRECISION); choose one of {', '.join(MODES)}.")
    return mode


def compare(float_out: tuple, int8_out: tuple) -> dict:
    """Agreement of two ``(probs, tags)`` or ``(probs, tags, content)`` results of the same windows
    (``content``: each window's music/speech/silence/noise decision), and whether it passes."""
    (p0, t0, *c0), (p1, t1, *c1) = float_out, int8_out
    same = p0.argmax(1) == p1.argmax(1)
    top2 = np.sort(p0, axis=1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) >= TIE_MARGIN
    decided_agreement = float(np.mean(same[decided])) if decided.any() else 1.0
    prob_diff = float(np.abs(p0 - p1).max())
    tag_diff = float(np.abs(t0 - t1).max()) if t0 is not None and t0.size else 0.0
    # Whether a window is music at all matters as much as its genre: a music window called noise loses it.
    content = float(np.mean([a == b for a, b in zip(c0[0], c1[0])])) if c0 and c1 and len(c0[0]) else 1.0
    figures = {"windows": int(len(p0)), "decided": int(decided.sum()), "agreement": round(float(np.mean(same)), 4),
               "decided_agreement": round(decided_agreement, 4), "content_agreement": round(content, 4),
               "max_prob_diff": round(prob_diff, 4), "max_tag_diff": round(tag_diff, 4)}
    return {**figures, "passed": _passes(figures)}


def _passes(figures: dict) -> bool:
    return (figures["decided_agreement"] >= MIN_AGREEMENT and figures["content_agreement"] >= MIN_AGREEMENT
            and figures["max_prob_diff"] <= MAX_PROB_DIFF and figures["max_tag_diff"] <= MAX_TAG_DIFF)


_SHARES = ("agreement", "decided_agreement", "content_agreement")  # 0..1
_DIFFS = ("max_prob_diff", "max_tag_diff")  # >= 0


def verdict_error(check) -> str | None:
    """What is wrong with a kept verdict (types, figures, a ``passed`` its figures contradict), or None."""
    if not isinstance(check, dict):
        return f"not an object: {type(check).__name__}"
    for key in ("windows", "decided"):
        value = check.get(key)
        if type(value) is not int or value < 0:
            return f"{key!r} is {value!r}, not a count"
    if check["decided"] > check["windows"]:
        return "more decided windows than windows"
    for key in _SHARES + _DIFFS:
        value = check.get(key)
        if type(value) not in (int, float) or not np.isfinite(value) or value < 0 or (key in _SHARES and value > 1):
            return f"{key!r} is {value!r}"
    if type(check.get("passed")) is not bool:
        return f"'passed' is {check.get('passed')!r}, not true or false"
    if check["passed"] != _passes(check):
        return f"'passed' is {check['passed']} but its figures say {_passes(check)}"
    return None


def current() -> dict:
    """What the ``fast`` backbones run in and why (the log and ``/api/models`` show it)."""
    try:
        backend = fast.backend_name()
    except fast.BackendError as exc:  # reported where the model loads; this is only a status
        backend = f"invalid ({exc})"
    with _lock:
        shown = {k: v for k, v in _choice.items() if k not in ("precision", "backbones")}
    return {"backend": backend, "precision": fast.current_precision(), **shown}


def _paced_analyse(model, mel: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(probs, tags, content)`` of ``mel``, a few windows at a time."""
    parts = []
    for i in range(0, len(mel), CHECK_CHUNK):
        parts.append(model.analyse(mel[i:i + CHECK_CHUNK]))
        time.sleep(CHECK_PAUSE_S)
    return (np.concatenate([a.probs for a in parts]), np.concatenate([a.tags for a in parts]),
            [c for a in parts for c in a.content])


def verdict_path(model) -> str:
    """Where the check's verdict for this model, these graphs and this CPU is kept."""
    key = json.dumps([CHECK_VERSION, model.name, getattr(model, "meta", None), list(model.backbones),
                      quantized.QUANT_VERSION, quantized.ort_version(), quantized.cpu_flags(), MIN_AGREEMENT,
                      TIE_MARGIN, MAX_PROB_DIFF, MAX_TAG_DIFF], sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return cache_path(model.backbones[0], f"precision-check-{digest}", "json")


def _check(model, mode: str) -> dict:
    for variant in model.backbones:  # builds (or finds) every int8 graph before anything switches
        quantized.int8_timbral_path(variant)
    if mode == "int8":
        return {"precision": "int8", "reason": "GENRE_MONITOR_PRECISION=int8 (not checked)"}
    path = verdict_path(model)
    check, problem = None, "none kept"
    found = find_cached(path)
    if found is not None:
        try:
            with open(found) as f:
                check = json.load(f)
            problem = verdict_error(check)
        except (OSError, ValueError) as exc:
            problem = f"unreadable: {exc}"
        if problem:
            log.warning("precision check verdict %s is not valid (%s): checking again", found, problem)
    cached = not problem
    if problem:
        mel = quantized.check_windows()
        # Only this thread's backbones switch: the live worker keeps the ones it has.
        with fast.precision("float"):
            float_out = _paced_analyse(model, mel)
        with fast.precision("int8"):
            check = compare(float_out, _paced_analyse(model, mel))
        write_cached(path, json.dumps(check).encode())
        cached = False
    verdict = "kept" if check["passed"] else "changed"
    return {"precision": "int8" if check["passed"] else "float", "check": check,
            "reason": f"int8 {verdict} the model's decisions on the demo check windows"
                      + (" (checked earlier on this machine)" if cached else "")}


def select(model, mode: str | None = None) -> dict:
    """Choose the precision for ``model`` (a ``GenreModel``) and switch later backbones to it.

    A backbone set already checked keeps its result. Never raises: a failed check keeps float.
    """
    global _choice
    try:
        mode = mode or mode_from_env()
    except PrecisionError as exc:
        mode, bad = "float", str(exc)
    else:
        bad = None
    backbones = list(getattr(model, "backbones", None) or [])
    with _lock:
        done = bad is None and _choice.get("backbones") == backbones and _choice.get("mode") == mode
    if done:
        result = dict(_choice)
    elif bad:
        result = {"precision": "float", "reason": bad}
    elif fast.backend_name() != "fast" or not backbones:
        result = {"precision": "float", "reason": "int8 applies to the fast backend's backbones only"}
    elif mode == "float":
        result = {"precision": "float", "reason": "GENRE_MONITOR_PRECISION=float"}
    else:
        try:
            result = _check(model, mode)
        except Exception as exc:  # the faster path is optional: any failure keeps float
            result = {"precision": "float", "reason": f"int8 unavailable: {type(exc).__name__}: {exc}"}
    with _lock:
        _choice = {**result, "mode": mode, "backbones": backbones}
        fast.use_precision(result["precision"])
    if not done:
        log.info("backbones run in %s: %s%s", result["precision"], result["reason"],
                 f" ({result['check']})" if result.get("check") else "")
    return current()
