"""What workers publish for everyone to read: each source's state and each worker's load.

``gm:state:<id>``: the source's ``describe()`` (plus ``worker``), expiring with the lease
TTL so a dead worker's states vanish with its leases. ``gm:workers``: worker id →
``{"sources", "capacity", "t", "model", "devices"}``, refreshed on every heartbeat;
entries older than ``stale_s`` count as dead.
"""

from __future__ import annotations

import time

from . import registry
from .redis_conn import dumps, loads

STATE_PREFIX = "gm:state:"
WORKERS = "gm:workers"


def publish_states(r, described: list[dict], ttl: float) -> None:
    if not described:
        return
    pipe = r.pipeline(transaction=False)
    for d in described:
        pipe.set(STATE_PREFIX + d["id"], dumps(d), px=max(1, int(ttl * 1000)))
    pipe.execute()


def clear_state(r, source_id: str) -> None:
    r.delete(STATE_PREFIX + source_id)


def read_states(r, source_ids) -> dict[str, dict]:
    ids = list(source_ids)
    if not ids:
        return {}
    return {sid: d for sid, d in zip(ids, (loads(t) for t in r.mget([STATE_PREFIX + s for s in ids])))
            if isinstance(d, dict)}


def publish_worker(r, worker_id: str, info: dict) -> None:
    r.hset(WORKERS, worker_id, dumps({**info, "t": time.time()}))


def remove_worker(r, worker_id: str) -> None:
    r.hdel(WORKERS, worker_id)


def live_workers(r, stale_s: float) -> dict[str, dict]:
    """Workers heard from within ``stale_s``; long-dead entries are cleaned up on the way."""
    now, out = time.time(), {}
    for wid, text in r.hgetall(WORKERS).items():
        info = loads(text)
        if not isinstance(info, dict):
            continue
        age = now - float(info.get("t", 0))
        if age <= stale_s:
            out[wid] = info
        elif age > 60 * stale_s:
            r.hdel(WORKERS, wid)
    return out


def _waiting(spec: dict) -> dict:
    """A registered source no live worker has reported yet."""
    label = spec.get("label") or spec.get("url") or spec.get("path") or spec.get("kind")
    return {"id": spec["id"], "kind": spec.get("kind"), "label": label, "state": "starting",
            "samplerate": None, "error": None, "notice": "waiting for a worker", "overflows": 0,
            "skipped": 0, "windows": 0, "hop": spec.get("hop"), "worker": None}


def cluster_model(workers: dict[str, dict], wanted: str | None = None) -> dict:
    """The model the workers run (a ready one first)."""
    models = [w.get("model") for w in workers.values() if isinstance(w.get("model"), dict)]
    models.sort(key=lambda m: (not m.get("ready"), m.get("name") != wanted))
    if models:
        return models[0]
    return {"name": wanted, "labels": [], "ready": False,
            "error": None if workers else "no worker is running"}


def cluster_payload(r, stale_s: float, wanted_model: str | None = None) -> dict:
    """The ``sources`` event payload for the whole cluster (docs/events.md)."""
    specs = registry.specs(r)
    states = read_states(r, specs)
    sources = [states.get(sid) or _waiting(spec) for sid, spec in specs.items()]
    return {"sources": sources, "model": cluster_model(live_workers(r, stale_s), wanted_model)}
