"""The dashboard's view of the sources: the engine's status with the history's beside it."""

from __future__ import annotations

from .engine_api import EngineAPI

NO_HISTORY = {"enabled": False}


def with_history(status: dict, store) -> dict:
    """The ``sources`` event (docs/events.md) from an engine's ``status()`` and the history ``store`` (or None)."""
    return {**status, "history": store.status() if store is not None else dict(NO_HISTORY)}


def sources_payload(engine: EngineAPI, store) -> dict:
    return with_history(engine.status(), store)
