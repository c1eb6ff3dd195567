"""What the engine refuses, in words for the user."""

from __future__ import annotations

from ..schemas import HOP, SchemaError


class EngineError(Exception):
    """A request the engine cannot honour; the message is for the user."""


def check_model_name(name, models: list[dict]) -> None:
    """``EngineError`` unless ``name`` is one of the installed ``models``."""
    if not isinstance(name, str) or not name:
        raise EngineError("select_model needs a model name")
    if name not in {m["name"] for m in models}:
        raise EngineError(f"no installed model named {name!r}")


def validate_hop(hop) -> float:
    """``schemas.HOP``, the one hop rule, with ``EngineError`` for the user."""
    try:
        return HOP(hop, "hop")
    except SchemaError as exc:
        raise EngineError(str(exc)) from None
