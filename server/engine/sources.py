"""The sources and their lifecycle: start, stop and restart under per-id locks, saved specs."""

from __future__ import annotations

import logging
import threading

from ..config import MAX_SOURCES
from ..model.stream_memory import release_streams
from ..source_specs import SourceSpecError, make_source, source_id_for, too_many_sources
from ..stream.pipeline import Pipeline
from .errors import EngineError, validate_hop
from .events import EventBus
from .monitors import Monitors

log = logging.getLogger(__name__)


class Sources:
    """The running pipelines, one per source id, and the specs they were started from
    (saved in ``settings``). Pipelines set ``wake`` when a window is due."""

    def __init__(self, settings, bus: EventBus, monitors: Monitors, hop: float, fast: bool = False):
        self.settings = settings
        self.hop = validate_hop(hop)
        self.fast = fast
        self.wake = threading.Event()
        self._bus = bus
        self._monitors = monitors
        self._pipelines: dict[str, Pipeline] = {}
        self._specs: dict[str, dict] = {}
        self._lock = threading.RLock()
        # Start, restart and stop of one source run one at a time (``_source_lock``); ids being
        # started count as taken, so two starts never share one.
        self._source_locks: dict[str, threading.Lock] = {}
        self._starting: set[str] = set()

    # --- reading -------------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        with self._lock:
            return list(self._pipelines)

    def pipelines(self) -> list[Pipeline]:
        with self._lock:
            return list(self._pipelines.values())

    def pipeline(self, source_id: str) -> Pipeline | None:
        with self._lock:
            return self._pipelines.get(source_id)

    def describe(self) -> list[dict]:
        """Each source's ``describe()`` with its id, counters and hop (the ``sources`` event's list)."""
        out = []
        for p in self.pipelines():
            d = p.source.describe()
            d.update(id=p.source_id, skipped=p.skipped, windows=p.windows, hop=p.hop_s)
            out.append(d)
        return out

    def restart_schedules(self) -> None:
        """A new model: every source's next window starts afresh."""
        for p in self.pipelines():
            p.restart_schedule()

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self, spec: dict) -> str:
        if not isinstance(spec, dict):
            raise EngineError("a source must be an object with a 'kind'")
        hop = validate_hop(spec.get("hop", self.hop))
        with self._lock:
            running = len(self._pipelines) + len(self._starting)
            if running >= MAX_SOURCES:
                raise EngineError(too_many_sources(running))
            source_id = self._new_id(spec)
            self._starting.add(source_id)
        try:
            with self._source_lock(source_id):
                pipeline = self._launch(source_id, spec, hop, "start")
                self._monitors.renew([source_id])  # before the worker can see the pipeline
                with self._lock:
                    self._pipelines[source_id] = pipeline
                    self._specs[source_id] = {**spec, "hop": hop, "id": source_id}
        finally:
            with self._lock:
                self._starting.discard(source_id)
        source = pipeline.source
        self._save()
        log.info("started source %s (%s)", source_id, source.label)
        if source.notice:
            self._bus.notice(source.notice, level="warning", source=source_id)
        self._bus.sources_changed()
        return source_id

    def stop(self, source_id: str) -> None:
        if not isinstance(source_id, str):
            raise EngineError(f"no source with id {source_id!r}")
        # Waits for a restart in progress, then stops what it started: a stop always wins.
        with self._source_lock(source_id):
            self._stop(source_id)

    def _stop(self, source_id: str) -> None:
        with self._lock:
            pipeline = self._pipelines.pop(source_id, None)
            self._specs.pop(source_id, None)
        if pipeline is None:
            raise EngineError(f"no source with id {source_id!r}")
        self._save(forget=source_id)
        self._monitors.finish(source_id)
        try:
            pipeline.stop()
        finally:
            release_streams(pipeline.owns_stream)  # its frame-reuse memory: a stopped source costs nothing
            log.info("stopped source %s", source_id)
            self._bus.sources_changed()

    def restart(self, source_id: str) -> str:
        """Start a source again from its spec, under the same id (after an error, a crash
        in its pipeline, or simply to begin again). Raises ``EngineError`` when it cannot
        start; the old, stopped source then stays listed with its reason."""
        if not isinstance(source_id, str):
            raise EngineError(f"no source with id {source_id!r}")
        # One at a time: a second restart replaces the first one's pipeline only after it is
        # registered (so it is stopped, not left running unseen), and a stop is never undone.
        with self._source_lock(source_id):
            return self._restart(source_id)

    def _restart(self, source_id: str) -> str:
        with self._lock:
            old = self._pipelines.get(source_id)
            spec = self._specs.get(source_id)
        if old is None or spec is None:
            raise EngineError(f"no source with id {source_id!r}")
        try:
            old.stop()
        except Exception:  # a broken source may fail to stop; it is replaced either way
            log.exception("stopping %s before restart", source_id)
        release_streams(old.owns_stream)
        pipeline = self._launch(source_id, spec, spec["hop"], "restart")
        source = pipeline.source
        # Stream time starts again at 0: a fresh monitor (the old one's open segment closed)
        # before the worker can see the new pipeline.
        self._monitors.renew([source_id])
        with self._lock:
            self._pipelines[source_id] = pipeline
        log.info("restarted source %s (%s)", source_id, source.label)
        self._bus.notice(f"{source.label} restarted", level="info", source=source_id)
        self._bus.sources_changed()
        return source_id

    def stop_all(self) -> None:
        for p in self.pipelines():
            try:
                p.stop()
            except Exception:
                log.exception("stopping %s", p.source_id)

    def _launch(self, source_id: str, spec: dict, hop: float, verb: str) -> Pipeline:
        """Build the spec's source and start its pipeline; ``EngineError`` when it cannot."""
        try:
            source = make_source({k: v for k, v in spec.items() if k != "id"}, fast=self.fast)
        except SourceSpecError as exc:
            raise EngineError(str(exc)) from None
        pipeline = Pipeline(source_id, source, hop, wake=self.wake)
        try:
            pipeline.start()
        except Exception as exc:
            log.info("source %s failed to %s", source_id, verb, exc_info=True)
            raise EngineError(f"could not {verb} {source.label}: {exc}") from None
        if source.state == "error":
            raise EngineError(source.error or f"could not {verb} {source.label}")
        return pipeline

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

    def _save(self, forget: str | None = None) -> None:
        """Save the specs; ``forget``: a deleted source, whose alert rules go with it."""
        with self._lock:
            specs = [dict(s) for s in self._specs.values()]

        def changes(values):
            rules = values.get("rules") or {}
            if forget not in rules:
                return {"sources": specs}
            return {"sources": specs, "rules": {k: v for k, v in rules.items() if k != forget}}
        self.settings.change(changes)
