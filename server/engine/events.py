"""The event bus: every engine event handed to every sink that handles it."""

from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger(__name__)

SINK_EVENTS = ("on_prediction", "on_spectrogram", "on_sources", "on_notice", "on_segment", "on_alert")


class EventBus:
    """Sinks are objects with any of the ``SINK_EVENTS`` methods; ``status`` gives the
    ``on_sources`` payload (the engine's sources and model)."""

    def __init__(self, status: Callable[[], dict]):
        self._status = status
        self._sinks: list = []

    def add_sink(self, sink) -> None:
        self._sinks.append(sink)

    def reports(self) -> dict:
        """What sinks add to the status (a sink's ``report()``, e.g. the webhook's counts)."""
        out: dict = {}
        for sink in list(self._sinks):
            report = getattr(sink, "report", None)
            if report is not None:
                try:
                    out.update(report())
                except Exception:
                    log.exception("sink %r failed to report", sink)
        return out

    def emit(self, event: str, payload) -> None:
        """Hand ``payload`` to every sink that handles ``event`` (one of ``SINK_EVENTS``)."""
        for sink in list(self._sinks):
            handler = getattr(sink, event, None)
            if handler is None:
                continue
            try:
                handler(payload)
            except Exception:  # a broken sink must not stop the monitor
                log.exception("sink %r failed on %s", sink, event)

    def emit_events(self, events) -> None:
        """Emit monitor events, ``(name, payload)`` pairs, as ``on_<name>``."""
        for name, event in events:
            self.emit(f"on_{name}", event)

    def notice(self, message: str, level: str = "error", source: str | None = None) -> None:
        (log.warning if level != "info" else log.info)("%s%s", f"[{source}] " if source else "", message)
        self.emit("on_notice", {"level": level, "message": message, "source": source})

    def sources_changed(self) -> None:
        self.emit("on_sources", self._status())
