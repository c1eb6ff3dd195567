"""One monitor per source (smoothing → segments → alerts) and the settings they follow."""

from __future__ import annotations

import threading
from typing import Callable

from ..monitor.alerts import unhonoured, validate_rules
from ..monitor.classified import ClassifiedWindow
from ..monitor.stage import SourceMonitor, validate_monitoring
from .errors import EngineError
from .events import EventBus


class Monitors:
    """Each source's ``SourceMonitor``, built for the current model (``model()``) from the
    saved rules, smoothing and segment settings (``settings``)."""

    def __init__(self, settings, bus: EventBus, model: Callable[[], object]):
        self.settings = settings
        self._bus = bus
        self._model = model
        self._monitors: dict[str, SourceMonitor | None] = {}
        # Windows are processed under it too, so no window reaches a monitor after it is finished.
        self._lock = threading.Lock()

    def process(self, record: ClassifiedWindow) -> tuple[ClassifiedWindow, list]:
        """Run a classified window through its source's monitor: ``(the window with its view, events)``."""
        with self._lock:
            monitor = self._monitors.get(record.source)
            if monitor is None:
                return record, []
            return monitor.process(record)

    def renew(self, source_ids) -> None:
        """Give each source a fresh monitor (new settings, rules or model); the old ones' open
        segments are closed."""
        closing = []
        with self._lock:
            for sid in source_ids:
                old = self._monitors.get(sid)
                self._monitors[sid] = self._make(sid)
                if old is not None:
                    closing += old.finish(sid)
        self._bus.emit_events(closing)

    def finish(self, source_id: str) -> None:
        """The source stopped: its open segment closes."""
        with self._lock:
            monitor = self._monitors.pop(source_id, None)
        if monitor is not None:
            self._bus.emit_events(monitor.finish(source_id))

    def _make(self, source_id: str) -> SourceMonitor | None:
        """The source's monitor for the current model: each saved setting (smoothing, segments,
        rules) that is usable is kept; one that is not falls back to its default alone, and a
        notice names it (hand-edited settings the checks at start-up did not see)."""
        model = self._model()
        if model is None:
            return None
        cfg = self.settings.values
        wanted = {"smoothing": cfg.get("smoothing"), "segments": cfg.get("segments"),
                  "rules": (cfg.get("rules") or {}).get(source_id)}
        checks = {"smoothing": lambda v: validate_monitoring(smoothing=v),
                  "segments": lambda v: validate_monitoring(segments=v), "rules": validate_rules}
        kept, ignored = {}, []
        for name, value in wanted.items():
            try:
                checks[name](value)
                kept[name] = value
            except ValueError as exc:
                ignored.append(f"{name} ({exc})")
        if ignored:
            self._bus.notice(f"monitoring settings of {source_id}: {'; '.join(ignored)} ignored, the default used; "
                             "the rest kept", source=source_id)
        try:
            return SourceMonitor(list(model.labels), uncertain_threshold=model.uncertain_threshold, **kept)
        except ValueError as exc:
            self._bus.notice(f"monitoring settings ignored for {source_id}: {exc}", source=source_id)
            return SourceMonitor(list(model.labels), uncertain_threshold=model.uncertain_threshold)

    # --- rules and settings ----------------------------------------------------------------------------
    def rules(self, source_id: str) -> list:
        return list((self.settings["rules"] or {}).get(source_id, []))

    def set_rules(self, source_id: str, rules: list, running: bool) -> list:
        """Validate and save one source's alert rules; a ``running`` source's monitor takes them now.

        Genres the model lacks are kept (see ``monitor.alerts``)."""
        if self._model() is None:
            raise EngineError("the model is still loading; try again in a moment")
        try:
            rules = validate_rules(rules)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        self.settings.update(rules={**(self.settings["rules"] or {}), source_id: rules})
        self.renew([source_id] if running else [])
        return rules

    def unhonoured(self, source_id: str, model=None) -> list[dict]:
        """The source's rules the current model (or ``model``) cannot honour as written
        (``monitor.alerts.unhonoured``); empty while no model is loaded."""
        model = model or self._model()
        return [] if model is None else unhonoured(self.rules(source_id), model.labels)

    def warn_missing_genres(self, source_ids, model) -> None:
        """Rules survive a model change; say exactly which of them this model cannot honour."""
        for sid in source_ids:
            for u in self.unhonoured(sid, model):
                self._bus.notice(f"model {model.name}: {u['message']}", level="warning", source=sid)

    def monitoring(self) -> dict:
        cfg = self.settings.values
        return {"smoothing": cfg.get("smoothing"), "segments": cfg.get("segments")}

    def set_monitoring(self, smoothing: dict | None, segments: dict | None, source_ids) -> dict:
        """Change smoothing and/or segment settings for every source (validated, saved)."""
        try:
            validate_monitoring(smoothing, segments)
        except ValueError as exc:
            raise EngineError(f"invalid monitoring settings: {exc}") from None
        self.settings.update(**{k: v for k, v in (("smoothing", smoothing), ("segments", segments)) if v is not None})
        self.renew(source_ids)
        return self.monitoring()
