"""The running monitor: sources and their pipelines, the model, the monitors and the sinks.

The engine owns what the user starts, stops and configures (and persists it in the
settings); ``server.worker.Worker`` classifies the pipelines' windows and hands
the results back through ``monitor`` and ``emit``.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import numpy as np

from .config import DEFAULT_HOP_SECONDS, MAX_HOP_SECONDS, MIN_HOP_SECONDS, N_FFT, N_MELS, WINDOW_FRAMES
from .stream.features import mel_power
from .model.content import CONTENT_LABELS, NOT_MUSIC
from .source_specs import SourceSpecError, make_source, source_id_for
from .stream.pipeline import Pipeline
from .worker import Worker, thread_task

log = logging.getLogger(__name__)

SINK_EVENTS = ("on_prediction", "on_spectrogram", "on_sources", "on_notice", "on_segment", "on_alert")


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


class Engine:
    def __init__(self, model_name: str | None = None, hop: float = DEFAULT_HOP_SECONDS, fast: bool = False,
                 settings=None):
        """``settings`` (a ``server.settings.Settings`` with a file) makes sources, rules and smoothing persist."""
        from .settings import Settings

        self.settings = settings if settings is not None else Settings(None)
        self._specs: dict[str, dict] = {}
        self._monitors: dict = {}
        self.hop = validate_hop(hop)
        self.fast = fast
        self.model_name = model_name
        self.model = None
        self.model_error: str | None = None
        self._pipelines: dict[str, Pipeline] = {}
        self._lock = threading.RLock()
        # Start, restart and stop of one source run one at a time (``_source_lock``); ids being
        # started count as taken, so two starts never share one.
        self._source_locks: dict[str, threading.Lock] = {}
        self._starting: set[str] = set()
        self._sinks: list = []
        self.worker = Worker(self)
        self.history = None  # the history store (also a sink): its status goes out with the sources

    # --- wiring --------------------------------------------------------------------------------------
    def add_sink(self, sink) -> None:
        self._sinks.append(sink)

    def emit(self, event: str, payload: dict) -> None:
        """Hand ``payload`` to every sink that handles ``event`` (one of ``SINK_EVENTS``)."""
        for sink in list(self._sinks):
            handler = getattr(sink, event, None)
            if handler is None:
                continue
            try:
                handler(payload)
            except Exception:  # a broken sink must not stop the monitor
                log.exception("sink %r failed on %s", sink, event)

    def notice(self, message: str, level: str = "error", source: str | None = None) -> None:
        (log.warning if level != "info" else log.info)("%s%s", f"[{source}] " if source else "", message)
        self.emit("on_notice", {"level": level, "message": message, "source": source})

    def start(self, start_task: Callable | None = None) -> None:
        """Load the model and start the worker, each as a background task."""
        start_task = start_task or thread_task
        start_task(self.load_model, self.model_name)
        self.worker.start(start_task)

    def shutdown(self) -> None:
        self.worker.stop()
        with self._lock:
            pipelines = list(self._pipelines.values())
        for p in pipelines:
            try:
                p.stop()
            except Exception:
                log.exception("stopping %s", p.source_id)

    # --- model -----------------------------------------------------------------------------------------
    def load_model(self, name: str | None) -> None:
        """Load a model (synchronously) and make it current; failures become a notice."""
        from .model.registry import load_model

        try:
            model = load_model(name)
            # Build and trace the networks, and the mel filters (librosa imports in
            # seconds), now rather than on the worker at the first live window.
            model.predict(np.zeros((1, WINDOW_FRAMES, N_MELS), dtype=np.float32))
            mel_power(np.zeros(N_FFT, np.float32))
        except Exception as exc:
            self.model_error = f"could not load model {name or 'default'}: {exc}"
            self.notice(self.model_error)
            self.emit_sources()
            return
        self.use_model(model)
        self._choose_precision(name)

    def use_model(self, model) -> None:
        """Make a loaded ``GenreModel`` current: sources start new windows, monitors start afresh."""
        with self._lock:
            self.model, self.model_name, self.model_error = model, model.name, None
            for p in self._pipelines.values():
                p.restart_schedule()
            closing = self._replace_monitors(list(self._pipelines))
        self.emit_events(closing)
        log.info("model %s ready (%d labels)", model.name, len(model.labels))
        self._warn_missing_genres(model)
        self.emit_sources()

    def _warn_missing_genres(self, model) -> None:
        """Rules survive a model change; say which of their genres this model cannot output."""
        from .monitor.alerts import missing_genres

        for sid in self.source_ids():
            missing = missing_genres(self.rules(sid), model.labels)
            if missing:
                self.notice(f"alert rules expect {', '.join(missing)}, which model {model.name} cannot output: "
                            "kept, but never matched", level="warning", source=sid)

    def _choose_precision(self, name: str | None) -> None:
        """Run the start-up precision check; the live model keeps working (in float) meanwhile."""
        from .model import precision
        from .model.registry import load_model

        try:
            # A second instance: the check's predictions never hold the live model's lock.
            precision.select(load_model(name))
        except Exception:  # the check is an optimisation: the model runs in float without it
            log.exception("precision check failed")
            return
        self.emit_sources()

    def list_models(self) -> list[dict]:
        from .model.registry import list_models

        return list_models()

    def select_model(self, name: str) -> None:
        check_model_name(name, self.list_models())
        threading.Thread(target=self.load_model, args=(name,), daemon=True).start()

    # --- sources -------------------------------------------------------------------------------------
    def start_source(self, spec: dict) -> str:
        if not isinstance(spec, dict):
            raise EngineError("a source must be an object with a 'kind'")
        hop = validate_hop(spec.get("hop", self.hop))
        with self._lock:
            source_id = self._new_id(spec)
            self._starting.add(source_id)
        try:
            with self._source_lock(source_id):
                pipeline = self._launch(source_id, spec, hop, "start")
                with self._lock:
                    self._pipelines[source_id] = pipeline
                    self._specs[source_id] = {**spec, "hop": hop, "id": source_id}
                    self._monitors[source_id] = self._make_monitor(source_id)
        finally:
            with self._lock:
                self._starting.discard(source_id)
        source = pipeline.source
        self._save_sources()
        log.info("started source %s (%s)", source_id, source.label)
        if source.notice:
            self.notice(source.notice, level="warning", source=source_id)
        self.emit_sources()
        return source_id

    def stop_source(self, source_id: str) -> None:
        if not isinstance(source_id, str):
            raise EngineError(f"no source with id {source_id!r}")
        # Waits for a restart in progress, then stops what it started: a stop always wins.
        with self._source_lock(source_id):
            self._stop_source(source_id)

    def _stop_source(self, source_id: str) -> None:
        with self._lock:
            pipeline = self._pipelines.pop(source_id, None)
            self.worker.forget(source_id)
            self._specs.pop(source_id, None)
            monitor = self._monitors.pop(source_id, None)
        if pipeline is None:
            raise EngineError(f"no source with id {source_id!r}")
        self._save_sources()
        if monitor is not None:
            self.emit_events(monitor.finish(source_id))
        try:
            pipeline.stop()
        finally:
            log.info("stopped source %s", source_id)
            self.emit_sources()

    def restart_source(self, source_id: str) -> str:
        """Start a source again from its spec, under the same id (after an error, a crash
        in its pipeline, or simply to begin again). Raises ``EngineError`` when it cannot
        start; the old, stopped source then stays listed with its reason."""
        if not isinstance(source_id, str):
            raise EngineError(f"no source with id {source_id!r}")
        # One at a time: a second restart replaces the first one's pipeline only after it is
        # registered (so it is stopped, not left running unseen), and a stop is never undone.
        with self._source_lock(source_id):
            return self._restart_source(source_id)

    def _restart_source(self, source_id: str) -> str:
        with self._lock:
            old = self._pipelines.get(source_id)
            spec = self._specs.get(source_id)
        if old is None or spec is None:
            raise EngineError(f"no source with id {source_id!r}")
        try:
            old.stop()
        except Exception:  # a broken source may fail to stop; it is replaced either way
            log.exception("stopping %s before restart", source_id)
        pipeline = self._launch(source_id, spec, spec["hop"], "restart")
        source = pipeline.source
        with self._lock:
            self._pipelines[source_id] = pipeline
            self.worker.forget(source_id)
            # Stream time starts again at 0: a fresh monitor, the old one's open segment closed.
            closing = self._replace_monitors([source_id])
        self.emit_events(closing)
        log.info("restarted source %s (%s)", source_id, source.label)
        self.notice(f"{source.label} restarted", level="info", source=source_id)
        self.emit_sources()
        return source_id

    def _launch(self, source_id: str, spec: dict, hop: float, verb: str) -> Pipeline:
        """Build the spec's source and start its pipeline; ``EngineError`` when it cannot."""
        try:
            source = make_source({k: v for k, v in spec.items() if k != "id"}, fast=self.fast)
        except SourceSpecError as exc:
            raise EngineError(str(exc)) from None
        pipeline = Pipeline(source_id, source, hop, wake=self.worker.wake)
        try:
            pipeline.start()
        except Exception as exc:
            log.info("source %s failed to %s", source_id, verb, exc_info=True)
            raise EngineError(f"could not {verb} {source.label}: {exc}") from None
        if source.state == "error":
            raise EngineError(source.error or f"could not {verb} {source.label}")
        return pipeline

    def pipeline(self, source_id: str) -> Pipeline | None:
        """The running pipeline of a source (for diagnostics and fault injection)."""
        with self._lock:
            return self._pipelines.get(source_id)

    def _source_lock(self, source_id: str) -> threading.Lock:
        # Kept for the engine's life (one small lock per id ever used): dropping one while a
        # caller waits on it would let a second lock for the same id run beside it.
        with self._lock:
            return self._source_locks.setdefault(source_id, threading.Lock())

    def _new_id(self, spec: dict) -> str:
        try:
            return source_id_for(spec, taken=set(self._pipelines) | self._starting)
        except SourceSpecError as exc:
            raise EngineError(str(exc)) from None

    def _save_sources(self) -> None:
        with self._lock:
            specs = [dict(s) for s in self._specs.values()]
        self.settings.update(sources=specs)

    # --- monitoring: smoothing, segments, alerts -----------------------------------------------------
    def _replace_monitors(self, source_ids) -> list:
        """Give each source a fresh monitor (new settings, rules or model); return the events that
        close the old monitors' open segments. Call with ``_lock`` held: the worker processes
        windows under it too, so no window reaches an old monitor after it is finished."""
        closing = []
        for sid in source_ids:
            old = self._monitors.get(sid)
            self._monitors[sid] = self._make_monitor(sid)
            if old is not None:
                closing += old.finish(sid)
        return closing

    def emit_events(self, events) -> None:
        """Emit monitor events, ``(name, payload)`` pairs, as ``on_<name>``."""
        for name, event in events:
            self.emit(f"on_{name}", event)

    def monitor(self, record):
        """Run a classified window through its source's monitor: ``(the window with its view, events)``."""
        with self._lock:  # see _replace_monitors
            monitor = self._monitors.get(record.source)
            if monitor is None:
                return record, []
            return monitor.process(record)

    def _make_monitor(self, source_id: str):
        model = self.model
        if model is None:
            return None
        from .monitor.stage import SourceMonitor

        cfg = self.settings.values
        try:
            return SourceMonitor(list(model.labels), smoothing=cfg.get("smoothing"), segments=cfg.get("segments"),
                                 rules=(cfg.get("rules") or {}).get(source_id),
                                 uncertain_threshold=model.uncertain_threshold)
        except ValueError as exc:  # hand-edited settings the checks at start-up did not see
            self.notice(f"monitoring settings ignored for {source_id}: {exc}", source=source_id)
            return SourceMonitor(list(model.labels), uncertain_threshold=model.uncertain_threshold)

    def set_rules(self, source_id: str, rules: list) -> list:
        """Validate and install alert rules for one source; they persist with the settings.

        Genres the model lacks are kept (see ``monitor.alerts``)."""
        from .monitor.alerts import validate_rules

        if self.model is None:
            raise EngineError("the model is still loading; try again in a moment")
        try:
            rules = validate_rules(rules)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        self.settings.update(rules={**(self.settings["rules"] or {}), source_id: rules})
        with self._lock:
            closing = self._replace_monitors([source_id] if source_id in self._pipelines else [])
        self.emit_events(closing)
        return rules

    def monitoring(self) -> dict:
        cfg = self.settings.values
        return {"smoothing": cfg.get("smoothing"), "segments": cfg.get("segments")}

    def set_monitoring(self, smoothing: dict | None = None, segments: dict | None = None) -> dict:
        """Change smoothing and/or segment settings for every source (validated, persisted)."""
        from .monitor.stage import validate_monitoring

        try:
            validate_monitoring(smoothing, segments)
        except ValueError as exc:
            raise EngineError(f"invalid monitoring settings: {exc}") from None
        self.settings.update(**{k: v for k, v in (("smoothing", smoothing), ("segments", segments)) if v is not None})
        with self._lock:
            closing = self._replace_monitors(list(self._pipelines))
        self.emit_events(closing)
        return self.monitoring()

    def rules(self, source_id: str) -> list:
        return list((self.settings["rules"] or {}).get(source_id, []))

    def source_ids(self) -> list[str]:
        with self._lock:
            return list(self._pipelines)

    def list_devices(self) -> list[dict]:
        from .audio.devices import list_input_devices

        try:
            return list_input_devices()
        except Exception as exc:
            raise EngineError(f"cannot list audio devices: {exc}") from None

    def _describe(self, p: Pipeline) -> dict:
        d = p.source.describe()
        d.update(id=p.source_id, skipped=p.skipped, windows=p.windows, hop=p.hop_s)
        return d

    def sources_payload(self) -> dict:
        from .model import precision

        with self._lock:
            sources = [self._describe(p) for p in self._pipelines.values()]
            model = self.model
        return {
            "sources": sources,
            "model": {
                "name": model.name if model else self.model_name,
                "labels": list(model.labels) if model else [],
                "content_labels": list(CONTENT_LABELS),
                "no_genre": list(NOT_MUSIC),
                "ready": model is not None,
                "error": self.model_error,
                "precision": precision.current(),
            },
            "history": self.history.status() if self.history is not None else {"enabled": False},
        }

    def emit_sources(self) -> None:
        self.emit("on_sources", self.sources_payload())

    def live(self) -> tuple[list[Pipeline], object]:
        """The running pipelines and the current model (None while none is loaded), for the worker."""
        with self._lock:
            return list(self._pipelines.values()), self.model

    def pipelines(self) -> list[Pipeline]:
        with self._lock:
            return list(self._pipelines.values())
