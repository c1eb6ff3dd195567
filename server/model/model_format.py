"""The ``model.json`` of a trained model directory: its format name, versions, and reading it."""

from __future__ import annotations

import json
import os

from .genre_model import ModelError
from .head_forward import KIND_VERSION

FORMAT = "genre-monitor-model"
PRIOR_VERSION = 4  # a head shrunk toward the zero-shot tag map (``head["prior"]``)
FORMAT_VERSION = max(*KIND_VERSION.values(), PRIOR_VERSION)  # the newest format read (all older ones are)


def format_version(head: dict) -> int:
    """The oldest model format that can read this head (``model.json``'s ``head``): older readers stay usable."""
    kinds = [head["kind"]] + [m["spec"]["kind"] for m in head.get("members", ())]
    return max([KIND_VERSION.get(kind, 1) for kind in kinds] + ([PRIOR_VERSION] if head.get("prior") else []))


def read_model_json(directory: str) -> dict:
    path = os.path.join(directory, "model.json")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError as err:
        raise ModelError(f"{directory} is not a model directory (no model.json).") from err
    except (OSError, ValueError) as err:
        raise ModelError(f"Cannot read {path}: {err}") from err
    if meta.get("format") != FORMAT or int(meta.get("version", 0)) > FORMAT_VERSION:
        raise ModelError(f"{path}: unknown model format {meta.get('format')!r} version {meta.get('version')!r}.")
    return meta
