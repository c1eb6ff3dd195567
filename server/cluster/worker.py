"""The ``worker`` command: claim sources from Redis, run them in a local Engine, emit to the web tier.

Each poll (``poll_s``) the worker renews its leases, stops sources that were removed or
taken over, applies shared settings, claims at most one free source (only when no live
worker with room is less loaded: sources spread one at a time), and publishes its
sources' states. Events go out through Flask-SocketIO's Redis message queue with the
same names and rooms as the single-process app, so every web process delivers them.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time

from server.engine import Engine, EngineError
from server.sinks.socketio_sink import SocketIOSink

from . import DEFAULT_CAPACITY, LEASE_TTL, POLL_S, leases, registry, shared_settings, state
from .redis_conn import connect

log = logging.getLogger(__name__)



class _ClusterSink(SocketIOSink):
    """Per-source events to the rooms, as in the app; ``sources`` becomes the cluster's list."""

    def __init__(self, worker: "ClusterWorker"):
        super().__init__(worker.emitter)
        self.worker = worker

    def on_sources(self, payload: dict) -> None:
        self.worker.publish()
        self.socketio.emit("sources", self.worker.cluster_payload())


class ClusterWorker:
    def __init__(self, redis_url: str, *, capacity: int = DEFAULT_CAPACITY, worker_id: str | None = None,
                 lease_ttl: float = LEASE_TTL, poll_s: float = POLL_S, model_name: str | None = None,
                 hop: float | None = None, fast: bool = False, sinks=()):
        from flask_socketio import SocketIO

        from server.config import DEFAULT_HOP_SECONDS

        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.r = connect(redis_url)
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{random.randrange(16**4):04x}"
        self.capacity, self.lease_ttl, self.poll_s = int(capacity), float(lease_ttl), float(poll_s)
        self._settings = shared_settings.read(self.r)
        self.engine = Engine(model_name=self._settings["model"] or model_name, hop=hop or DEFAULT_HOP_SECONDS,
                             fast=fast)
        self.engine.settings.update(rules=self._settings["rules"], smoothing=self._settings["smoothing"],
                                    segments=self._settings["segments"])
        # Write-only: this process has no browsers, it only publishes to the queue.
        self.emitter = SocketIO(message_queue=redis_url)
        self.engine.add_sink(_ClusterSink(self))
        for sink in sinks:
            self.engine.add_sink(sink)
        self._lock = threading.RLock()
        self.owned: set[str] = set()          # leases held (running or failed sources)
        self.failed: dict[str, dict] = {}     # owned sources that could not start: their state
        self._restarts_seen: dict[str, int] = {}
        self._devices = _devices()
        self._stop = threading.Event()

    # --- publishing ---------------------------------------------------------------------------------
    def described(self) -> list[dict]:
        with self._lock:
            payload = self.engine.status()
            out = [{**d, "worker": self.id} for d in payload["sources"] if d["id"] in self.owned]
            out += [dict(d) for sid, d in self.failed.items() if sid in self.owned]
        return out

    def publish(self) -> None:
        """States of our sources (TTL = lease TTL) and our heartbeat."""
        state.publish_states(self.r, self.described(), self.lease_ttl)
        state.publish_worker(self.r, self.id, {"sources": len(self.owned), "capacity": self.capacity,
                                               "model": self.engine.status()["model"],
                                               "devices": self._devices})

    def cluster_payload(self) -> dict:
        return state.cluster_payload(self.r, self.lease_ttl, self._settings.get("model"))

    def _announce(self) -> None:
        self.emitter.emit("sources", self.cluster_payload())

    # --- the loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        """Poll until ``stop()``; then give every source back."""
        self.engine.start()
        log.info("worker %s: capacity %d, lease TTL %.1f s", self.id, self.capacity, self.lease_ttl)
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.step()
                except Exception:  # Redis hiccup or a bug: keep polling; leases protect the rest
                    log.exception("worker step failed")
                self._stop.wait(max(0.0, self.poll_s - (time.monotonic() - started)))
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def step(self) -> None:
        self._renew()
        specs = registry.specs(self.r)
        self._drop_removed(specs)
        self._apply_settings()
        self._apply_restarts()
        self._claim(specs)
        self.publish()

    def _renew(self) -> None:
        held = leases.renew_many(self.r, sorted(self.owned), self.id, self.lease_ttl)
        for sid, ok in held.items():
            if not ok:
                log.warning("worker %s lost the lease of %s; stopping it here", self.id, sid)
                self._stop_local(sid)

    def _drop_removed(self, specs: dict) -> None:
        for sid in sorted(self.owned - set(specs)):
            log.info("source %s was removed", sid)
            self._stop_local(sid)
            leases.release(self.r, sid, self.id)
            state.clear_state(self.r, sid)
            self._announce()

    def _stop_local(self, sid: str) -> None:
        with self._lock:
            self.owned.discard(sid)
            self.failed.pop(sid, None)
            self._restarts_seen.pop(sid, None)
        if sid in self.engine.source_ids():
            try:
                self.engine.stop_source(sid)
            except EngineError:
                pass

    def _my_turn(self) -> bool:
        """Claim only when no live worker with room carries fewer sources than we do."""
        mine = len(self.owned)
        others = [w.get("sources", 0) for wid, w in state.live_workers(self.r, self.lease_ttl).items()
                  if wid != self.id and w.get("sources", 0) < w.get("capacity", 0)]
        return not others or mine <= min(others)

    def _claim(self, specs: dict) -> None:
        if len(self.owned) >= self.capacity:
            return
        free = [sid for sid, who in leases.owners(self.r, specs).items() if who is None]
        if not free or not self._my_turn():
            return
        random.shuffle(free)  # workers polling together rarely race for the same id
        for sid in free:
            if leases.claim(self.r, sid, self.id, self.lease_ttl):
                with self._lock:
                    self.owned.add(sid)
                    self._restarts_seen[sid] = registry.restarts(self.r).get(sid, 0)
                self._start_local(specs[sid])
                return

    def _start_local(self, spec: dict) -> None:
        sid = spec["id"]
        try:
            self.engine.start_source(spec)
            with self._lock:
                self.failed.pop(sid, None)
            log.info("worker %s runs %s", self.id, sid)
        except EngineError as exc:
            # Keep the lease: the error shows on every dashboard until restarted or removed.
            log.warning("worker %s could not start %s: %s", self.id, sid, exc)
            label = spec.get("label") or spec.get("url") or spec.get("path") or spec.get("kind")
            with self._lock:
                self.failed[sid] = {"id": sid, "kind": spec.get("kind"), "label": label, "state": "error",
                                    "samplerate": None, "error": str(exc), "notice": None, "overflows": 0,
                                    "skipped": 0, "windows": 0, "hop": spec.get("hop"), "worker": self.id}
            self.publish()
            self._announce()

    def _apply_restarts(self) -> None:
        counts = registry.restarts(self.r)
        for sid in sorted(self.owned):
            n = counts.get(sid, 0)
            if n == self._restarts_seen.get(sid, 0):
                continue
            self._restarts_seen[sid] = n
            if sid in self.failed:
                spec = registry.specs(self.r).get(sid)
                if spec is not None:
                    self._start_local(spec)
                continue
            try:
                self.engine.restart_source(sid)
            except EngineError as exc:
                self.engine.events.notice(str(exc), source=sid)

    def _apply_settings(self) -> None:
        new = shared_settings.read(self.r)
        old, self._settings = self._settings, new
        if new["model"] and new["model"] != old["model"] and new["model"] != self.engine.model_name:
            try:
                self.engine.select_model(new["model"])
            except EngineError as exc:
                self.engine.events.notice(str(exc))
        if new["smoothing"] != old["smoothing"] or new["segments"] != old["segments"]:
            try:
                self.engine.set_monitoring(smoothing=new["smoothing"], segments=new["segments"])
            except EngineError as exc:
                self.engine.events.notice(str(exc))
        if new["rules"] != old["rules"]:
            self.engine.settings.update(rules=new["rules"])
            if self.engine.model is not None:
                for sid in self.engine.source_ids():
                    if new["rules"].get(sid) != old["rules"].get(sid):
                        try:
                            self.engine.set_rules(sid, new["rules"].get(sid, []))
                        except EngineError as exc:
                            self.engine.events.notice(str(exc), source=sid)

    def close(self) -> None:
        """Stop every source and hand its lease back at once (no waiting for the TTL)."""
        for sid in sorted(self.owned):
            self._stop_local(sid)
            try:
                leases.release(self.r, sid, self.id)
                state.clear_state(self.r, sid)
            except Exception:
                log.exception("releasing %s", sid)
        self.engine.shutdown()
        try:
            state.remove_worker(self.r, self.id)
            self._announce()
        except Exception:
            log.exception("leaving the cluster")


def _devices() -> list[dict]:
    from server.audio.devices import list_input_devices

    try:
        return list_input_devices()
    except Exception:  # a worker without audio hardware still runs streams and files
        return []


def register_specs(r, specs: list[dict]) -> list[str]:
    """Add CLI source specs to the registry unless an equal spec is there already."""
    from server.source_specs import SourceSpecError

    def same(a, b):
        return {k: v for k, v in a.items() if k not in ("id", "hop")} == {k: v for k, v in b.items()
                                                                          if k not in ("id", "hop")}

    ids = []
    for spec in specs:
        existing = [sid for sid, s in registry.specs(r).items() if same(s, spec)]
        if existing:
            ids.append(existing[0])
            continue
        try:
            ids.append(registry.add(r, spec))
        except SourceSpecError as exc:
            raise EngineError(str(exc)) from None
    return ids
