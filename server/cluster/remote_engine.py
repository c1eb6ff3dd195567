"""The web tier's engine when sources run on workers: the Engine methods the web tier
uses (server/web/api.py, socket_events.py), answered from and written to Redis.

Starting a source registers its spec (a worker claims it); stopping removes it (its
worker stops it); rules, monitoring and the model go to the shared settings that every
worker follows. Prediction events never pass through here: workers emit them to the
Socket.IO message queue and every web process delivers them.
"""

from __future__ import annotations

import logging
import threading

from server.config import DEFAULT_HOP_SECONDS
from server.engine import EngineError, check_model_name, validate_hop
from server import source_specs
from server.source_specs import SourceSpecError

from . import LEASE_TTL, registry, shared_settings, state
from .redis_conn import ClusterError, connect

log = logging.getLogger(__name__)

def check_spec(spec) -> dict:
    """The checks ``make_source`` makes that open nothing (the worker opens the source)."""
    try:
        return source_specs.check_spec(spec)
    except SourceSpecError as exc:
        raise EngineError(str(exc)) from None


class RemoteEngine:
    def __init__(self, redis_url: str, model_name: str | None = None, hop: float = DEFAULT_HOP_SECONDS,
                 poll_s: float = 0.5, stale_s: float = LEASE_TTL):
        try:
            self.r = connect(redis_url)
        except ClusterError as exc:
            raise EngineError(str(exc)) from None
        self.hop = validate_hop(hop)
        self.poll_s, self.stale_s = poll_s, stale_s
        if model_name:
            shared_settings.update(self.r, model=model_name)
        self._sinks: list = []
        self._known: set[str] = set()
        self._stop = threading.Event()

    # --- wiring ------------------------------------------------------------------------------------
    def add_sink(self, sink) -> None:
        self._sinks.append(sink)

    def emit(self, event: str, payload: dict) -> None:
        for sink in list(self._sinks):
            handler = getattr(sink, event, None)
            if handler is not None:
                try:
                    handler(payload)
                except Exception:
                    log.exception("sink %r failed on %s", sink, event)

    def start(self, start_task=None) -> None:
        """Follow the registry: local clients that watch everything join new sources' rooms."""
        self._stop.clear()
        swept = shared_settings.sweep_rules(self.r)
        if swept:
            log.info("deleted the alert rules of %d source(s) no longer registered: %s", len(swept), ", ".join(swept))
        if start_task is None:
            threading.Thread(target=self._follow, daemon=True, name="cluster-follow").start()
        else:
            start_task(self._follow)

    def shutdown(self) -> None:
        self._stop.set()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                ids = set(registry.ids(self.r))
            except Exception:
                log.warning("cannot read the source registry", exc_info=True)
                continue
            new, self._known = ids - self._known, ids
            if new:
                self._join_watch_all(sorted(new))

    def _join_watch_all(self, ids: list[str]) -> None:
        # Only room membership, which is per process; the ``sources`` event itself
        # reaches every client from the worker or web process that made the change.
        for sink in self._sinks:
            watchers = getattr(sink, "watchers", None)
            if watchers is not None:
                watchers.follow_new(sink.socketio, ids)

    # --- sources -----------------------------------------------------------------------------------
    def source_ids(self) -> list[str]:
        return registry.ids(self.r)

    def status(self) -> dict:
        return state.cluster_payload(self.r, self.stale_s, shared_settings.read(self.r)["model"])

    def _changed(self) -> None:
        self._known = set(registry.ids(self.r))
        self.emit("on_sources", self.status())

    def start_source(self, spec: dict) -> str:
        check_spec(spec)
        spec = {**spec, "hop": validate_hop(spec.get("hop", self.hop))}
        try:
            source_id = registry.add(self.r, spec)
        except SourceSpecError as exc:
            raise EngineError(str(exc)) from None
        log.info("registered source %s", source_id)
        self._changed()
        return source_id

    def stop_source(self, source_id: str) -> None:
        if not isinstance(source_id, str) or not shared_settings.remove_source(self.r, source_id):
            raise EngineError(f"no source with id {source_id!r}")
        state.clear_state(self.r, source_id)
        self._changed()

    def restart_source(self, source_id: str) -> str:
        if not isinstance(source_id, str) or source_id not in registry.ids(self.r):
            raise EngineError(f"no source with id {source_id!r}")
        registry.request_restart(self.r, source_id)
        return source_id

    def list_devices(self) -> list[dict]:
        """Input devices of the live workers, each tagged with its ``worker``."""
        out = []
        for wid, info in sorted(state.live_workers(self.r, self.stale_s).items()):
            out += [{**d, "worker": wid} for d in info.get("devices") or [] if isinstance(d, dict)]
        return out

    # --- model and monitoring ----------------------------------------------------------------------
    def list_models(self) -> list[dict]:
        from server.model.registry import list_models

        return list_models()

    def select_model(self, name: str) -> None:
        check_model_name(name, self.list_models())
        shared_settings.update(self.r, model=name)

    def set_rules(self, source_id: str, rules: list) -> list:
        from server.monitor.alerts import validate_rules

        model = self.status()["model"]
        if not model.get("ready"):
            raise EngineError("the model is still loading; try again in a moment")
        try:
            rules = validate_rules(rules)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        if not shared_settings.set_rules(self.r, source_id, rules):
            raise EngineError(f"no source with id {source_id!r}")
        return rules

    def rules(self, source_id: str) -> list:
        return list(shared_settings.read(self.r)["rules"].get(source_id, []))

    def monitoring(self) -> dict:
        cfg = shared_settings.read(self.r)
        return {"smoothing": cfg["smoothing"], "segments": cfg["segments"]}

    def set_monitoring(self, smoothing: dict | None = None, segments: dict | None = None) -> dict:
        from server.monitor.stage import validate_monitoring

        try:
            validate_monitoring(smoothing, segments)
        except ValueError as exc:
            raise EngineError(f"invalid monitoring settings: {exc}") from None
        shared_settings.update(self.r, **{k: v for k, v in (("smoothing", smoothing), ("segments", segments))
                                          if v is not None})
        return self.monitoring()
