"""The Socket.IO payloads built from a classified window (schemas in docs/events.md)."""

from __future__ import annotations

import numpy as np

from ..config import MODEL_SR, N_MELS
from ..stream.features import DB_FLOOR
from ..model.content import MUSIC
from ..stream.pipeline import Pipeline, Window

TOP_TAGS = 8


def spectrogram_payload(w: Window) -> dict:
    return {
        "source": w.source_id,
        "times": [round(float(t), 4) for t in w.spec_times],
        "columns": np.round(w.spec_db, 1).tolist(),
        "n_mels": N_MELS,
        "fmax": MODEL_SR // 2,
        "db_floor": DB_FLOOR,
    }


def prediction_payload(p: Pipeline, w: Window, model, probs: np.ndarray, tags: np.ndarray,
                       content: str = MUSIC, content_probs: dict | None = None) -> dict:
    """``content`` other than music (speech, silence, noise) gives ``top``/``confidence`` None:
    the genre head's ``probs`` still travel, but the window has no genre."""
    labels = list(model.labels)
    top = int(np.argmax(probs))
    order = np.argsort(tags)[::-1][:TOP_TAGS]
    music = content == MUSIC
    return {
        "source": w.source_id,
        "t": round(w.t, 4),
        "wall": round(w.wall, 3),
        "model": model.name,
        "content": content,
        "content_probs": {k: round(float(v), 4) for k, v in (content_probs or {}).items()},
        "labels": labels,
        "probs": [round(float(x), 5) for x in probs],
        "top": labels[top] if music else None,
        "confidence": round(float(probs[top]), 5) if music else None,
        "uncertain": bool(music and model.is_uncertain(probs)),
        "tags": [{"name": model.tag_names[i], "score": round(float(tags[i]), 4)} for i in order],
        "level_db": w.level_db,
        "counters": {"windows": p.windows, "skipped": p.skipped, "overflows": p.source.overflows},
    }


def content_probs_of(analysis, i: int) -> dict:
    """Window ``i``'s content-head probabilities as ``{label: p}`` (empty without a head)."""
    return dict(zip(analysis.content_labels, analysis.content_probs[i].tolist()))
