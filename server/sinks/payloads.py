"""The JSON edge of a classified window and of the spectrogram (schemas in docs/events.md).

``prediction_payload`` is the one way a ``ClassifiedWindow`` becomes JSON (the Socket.IO
``prediction`` event); ``window_from_payload`` is the one way back.
"""

from __future__ import annotations

import numpy as np

from ..config import MODEL_SR, N_MELS
from ..model.content import MUSIC
from ..model.tempo import Tempo
from ..monitor.classified import TOP_TAGS, ClassifiedWindow, Counters
from ..stream.features import DB_FLOOR
from ..stream.pipeline import Window

__all__ = ["TOP_TAGS", "prediction_payload", "spectrogram_payload", "window_from_payload"]


def spectrogram_payload(w: Window) -> dict:
    return {
        "source": w.source_id,
        "times": [round(float(t), 4) for t in w.spec_times],
        "columns": np.round(w.spec_db, 1).tolist(),
        "n_mels": N_MELS,
        "fmax": MODEL_SR // 2,
        "db_floor": DB_FLOOR,
    }


def _probs(x) -> list[float]:
    return [round(float(v), 5) for v in x]


def _tempo(t: Tempo | None) -> dict | None:
    if t is None:
        return None
    return {"bpm": round(t.bpm, 1), "clarity": round(t.clarity, 3),
            "alternative": None if t.alternative is None else round(t.alternative, 1)}


def _float_or_none(x) -> float | None:
    return None if x is None else float(x)


def prediction_payload(r: ClassifiedWindow) -> dict:
    """The ``prediction`` event of ``r``; the monitor's fields only once a monitor has seen it
    (``smoothed_uncertain`` always)."""
    confidence = r.confidence
    payload = {
        "source": r.source,
        "t": round(r.t, 4),
        "wall": round(r.wall, 3),
        "model": r.model,
        "content": r.content,
        "content_probs": {k: round(float(v), 4) for k, v in r.content_probs.items()},
        "labels": list(r.labels),
        "probs": _probs(r.probs),
        "top": r.top,
        "confidence": round(confidence, 5) if confidence is not None else None,
        "uncertain": r.uncertain,
        "tags": [{"name": name, "score": round(float(score), 4)} for name, score in r.tags],
        "level_db": r.level_db,
        "counters": r.counters._asdict(),
        "tempo": _tempo(r.tempo),
    }
    if r.smoothed is not None:
        payload.update(smoothed=_probs(r.smoothed), smoothed_top=r.smoothed_top, segment=r.segment)
    payload["smoothed_uncertain"] = r.smoothed_uncertain
    return payload


def window_from_payload(p: dict) -> ClassifiedWindow:
    """A ``prediction`` payload (or one shaped like it) as a ``ClassifiedWindow``: ``KeyError``,
    ``TypeError`` or ``ValueError`` when a field is missing or not a number. ``top`` and
    ``confidence`` are not read: a window's come from its ``probs`` and ``content``."""
    labels = tuple(str(x) for x in p["labels"])
    probs = np.asarray(p["probs"], dtype=np.float64)
    smoothed = p.get("smoothed")
    tempo = p.get("tempo")
    return ClassifiedWindow(
        source=str(p["source"]), t=float(p.get("t") or 0.0), wall=float(p["wall"]), model=str(p.get("model") or ""),
        labels=labels, probs=probs,
        tags=tuple((str(tag["name"]), float(tag["score"])) for tag in p.get("tags") or ()),
        content=p.get("content") or MUSIC, content_probs=dict(p.get("content_probs") or {}),
        uncertain=bool(p.get("uncertain")), level_db=p.get("level_db"),
        counters=Counters(**(p.get("counters") or {})),
        tempo=None if tempo is None else Tempo(float(tempo["bpm"]), float(tempo["clarity"]),
                                               _float_or_none(tempo.get("alternative"))),
        smoothed=None if smoothed is None else np.asarray(smoothed, dtype=np.float64),
        smoothed_top=p.get("smoothed_top"), smoothed_uncertain=bool(p.get("smoothed_uncertain")),
        segment=p.get("segment"))
