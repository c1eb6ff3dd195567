"""The Socket.IO payloads built from a classified window (schemas in docs/events.md)."""

from __future__ import annotations

import numpy as np

from .config import MODEL_SR, N_MELS
from .features import DB_FLOOR
from .pipeline import Pipeline, Window

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


def prediction_payload(p: Pipeline, w: Window, model, probs: np.ndarray, tags: np.ndarray) -> dict:
    labels = list(model.labels)
    top = int(np.argmax(probs))
    order = np.argsort(tags)[::-1][:TOP_TAGS]
    return {
        "source": w.source_id,
        "t": round(w.t, 4),
        "wall": round(w.wall, 3),
        "model": model.name,
        "labels": labels,
        "probs": [round(float(x), 5) for x in probs],
        "top": labels[top],
        "confidence": round(float(probs[top]), 5),
        "uncertain": bool(model.is_uncertain(probs)),
        "tags": [{"name": model.tag_names[i], "score": round(float(tags[i]), 4)} for i in order],
        "level_db": w.level_db,
        "counters": {"windows": p.windows, "skipped": p.skipped, "overflows": p.source.overflows},
    }
