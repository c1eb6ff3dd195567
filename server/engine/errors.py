"""What the engine refuses, in words for the user."""

from __future__ import annotations

from ..config import MAX_HOP_SECONDS, MIN_HOP_SECONDS


class EngineError(Exception):
    """A request the engine cannot honour; the message is for the user."""


def check_model_name(name, models: list[dict]) -> None:
    """``EngineError`` unless ``name`` is one of the installed ``models``."""
    if not isinstance(name, str) or not name:
        raise EngineError("select_model needs a model name")
    if name not in {m["name"] for m in models}:
        raise EngineError(f"no installed model named {name!r}")


def validate_hop(hop) -> float:
    if not isinstance(hop, (int, float)) or isinstance(hop, bool) or not (MIN_HOP_SECONDS <= hop <= MAX_HOP_SECONDS):
        raise EngineError(f"hop must be a number of seconds from {MIN_HOP_SECONDS} to {MAX_HOP_SECONDS}")
    return float(hop)
