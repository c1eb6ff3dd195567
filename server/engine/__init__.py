"""The running monitor, in parts: the event bus (``events``), the model holder (``models``),
the sources and their lifecycle (``sources``) and one monitor per source (``monitors``).

``Engine`` wires them together with the worker (``server.worker``), which reads only the
parts it needs, and answers the web tier (``server.web.engine_api.EngineAPI``).
"""

from __future__ import annotations

from typing import Callable

from ..config import DEFAULT_HOP_SECONDS
from ..worker import Worker, thread_task
from .errors import EngineError, check_model_name, validate_hop
from .events import SINK_EVENTS, EventBus
from .models import ModelHolder
from .monitors import Monitors
from .sources import Sources

WORKER_STOP_S = 5.0  # the longest a stop waits for the classify loop to finish its batch

__all__ = ["Engine", "EngineError", "SINK_EVENTS", "check_model_name", "validate_hop"]


class Engine:
    def __init__(self, model_name: str | None = None, hop: float = DEFAULT_HOP_SECONDS, fast: bool = False,
                 settings=None):
        """``settings`` (a ``server.settings.Settings`` with a file) makes sources, rules and smoothing persist."""
        from ..settings import Settings

        self.settings = settings if settings is not None else Settings(None)
        self.events = EventBus(status=self.status)
        # Settings that could not be saved (full disk, read-only folder) are said on the dashboard.
        self.settings.on_save_error = lambda error: self.events.notice(
            error or "settings saved again", level="error" if error else "info")
        self.models = ModelHolder(model_name, self.events, on_ready=self._model_ready)
        self.monitors = Monitors(self.settings, self.events, model=self.models.current)
        self.sources = Sources(self.settings, self.events, self.monitors, hop, fast)
        self.worker = Worker(self.sources, self.models, self.monitors, self.events)

    @property
    def hop(self) -> float:
        return self.sources.hop

    @property
    def model(self):
        """The current model (None while none is loaded)."""
        return self.models.model

    @property
    def model_name(self) -> str | None:
        return self.models.name

    # --- wiring --------------------------------------------------------------------------------------
    def add_sink(self, sink) -> None:
        self.events.add_sink(sink)

    def start(self, start_task: Callable | None = None) -> None:
        """Load the model and start the worker, each as a background task."""
        start_task = start_task or thread_task
        start_task(self.load_model, self.models.name)
        self.worker.start(start_task)

    def shutdown(self) -> None:
        self.worker.stop(timeout=WORKER_STOP_S)
        self.sources.stop_all()

    def status(self) -> dict:
        """The sources, the model and what sinks report (the ``sources`` event less what the web tier adds)."""
        return {"sources": self.sources.describe(), "model": self.models.status(), **self.events.reports()}

    # --- model ---------------------------------------------------------------------------------------
    def load_model(self, name: str | None) -> None:
        self.models.load(name)

    def use_model(self, model) -> None:
        """Make a loaded ``GenreModel`` current: sources start new windows, monitors start afresh."""
        self.models.use(model)

    def _model_ready(self, model) -> None:
        self.sources.restart_schedules()
        ids = self.sources.ids()
        self.monitors.renew(ids)
        self.monitors.warn_missing_genres(ids, model)
        self.events.sources_changed()

    def list_models(self) -> list[dict]:
        return self.models.list_models()

    def select_model(self, name: str) -> None:
        self.models.select(name)

    # --- sources -------------------------------------------------------------------------------------
    def start_source(self, spec: dict) -> str:
        return self.sources.start(spec)

    def stop_source(self, source_id: str) -> None:
        self.sources.stop(source_id)

    def restart_source(self, source_id: str) -> str:
        return self.sources.restart(source_id)

    def source_ids(self) -> list[str]:
        return self.sources.ids()

    def pipeline(self, source_id: str):
        """The running pipeline of a source (for diagnostics and fault injection)."""
        return self.sources.pipeline(source_id)

    def list_devices(self) -> list[dict]:
        from ..audio.devices import list_input_devices

        try:
            return list_input_devices()
        except Exception as exc:
            raise EngineError(f"cannot list audio devices: {exc}") from None

    # --- monitoring ----------------------------------------------------------------------------------
    def rules(self, source_id: str) -> list:
        return self.monitors.rules(source_id)

    def set_rules(self, source_id: str, rules: list) -> list:
        """Validate and install alert rules for one source; they persist with the settings."""
        return self.monitors.set_rules(source_id, rules, running=source_id in self.sources.ids())

    def monitoring(self) -> dict:
        return self.monitors.monitoring()

    def set_monitoring(self, smoothing: dict | None = None, segments: dict | None = None) -> dict:
        """Change smoothing and/or segment settings for every source (validated, persisted)."""
        return self.monitors.set_monitoring(smoothing, segments, self.sources.ids())
