"""Installed genre models: ``models/<name>/`` directories plus the built-in zero-shot model."""

from __future__ import annotations

import os

from .genre_model import GenreModel, ModelError
from .heads import load_directory
from .model_format import read_model_json
from .zeroshot import ZEROSHOT_LABELS, ZeroShotModel

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models")
ZEROSHOT = "zeroshot"


class ModelNotFound(Exception):
    """No installed model has that name (and it is not a model directory)."""


def _installed(models_dir: str) -> list[str]:
    if not os.path.isdir(models_dir):
        return []
    return sorted(n for n in os.listdir(models_dir)
                  if os.path.isfile(os.path.join(models_dir, n, "model.json")))


def list_models(models_dir: str | None = None) -> list[dict]:
    """``[{name, labels, description, ...}]`` for installed heads (default first) and ``zeroshot``."""
    models_dir = models_dir or MODELS_DIR
    names = _installed(models_dir)
    names.sort(key=lambda n: (n != "default", n))
    out = []
    for name in names:
        try:
            meta = read_model_json(os.path.join(models_dir, name))
        except ModelError:
            continue  # a damaged directory is not offered
        metrics = meta.get("metrics", {})
        out.append({"name": name, "labels": list(meta["labels"]), "description": meta.get("description", ""),
                    "arch": meta.get("arch", "head"), "created": meta.get("created"),
                    "track_accuracy": metrics.get("track_accuracy"),
                    "window_accuracy": metrics.get("window_accuracy")})
    out.append({"name": ZEROSHOT, "labels": list(ZEROSHOT_LABELS), "arch": "zeroshot",
                "description": ZeroShotModel.__doc__.strip()})
    return out


def load_model(name: str | None = None, models_dir: str | None = None) -> GenreModel:
    """A model by name (``models/<name>``), by directory path, or the default.

    ``None`` means ``default`` when ``models/default`` exists, else the zero-shot model.
    """
    models_dir = models_dir or MODELS_DIR
    if name is None:
        name = "default" if os.path.isfile(os.path.join(models_dir, "default", "model.json")) else ZEROSHOT
    if name == ZEROSHOT:
        return ZeroShotModel()
    candidates = [os.path.join(models_dir, name)]
    if os.sep in name or "/" in name or os.path.isdir(name):
        candidates.insert(0, name)
    for directory in candidates:
        if os.path.isfile(os.path.join(directory, "model.json")):
            return load_directory(directory)
    known = ", ".join(_installed(models_dir) + [ZEROSHOT])
    raise ModelNotFound(f"No model named {name!r}. Installed models: {known}. "
                        f"A path to a model directory (holding model.json) also works.")
