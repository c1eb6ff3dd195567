"""The shared list of sources: a Redis hash ``gm:sources`` of id → spec JSON.

The web tier adds specs, at most ``config.MAX_SOURCES``, and removes them (with their rules:
``shared_settings.remove_source``); workers claim them (``leases``). A restart is a
counter in ``gm:restarts`` that the owning worker watches.
"""

from __future__ import annotations

from server.config import MAX_SOURCES
from server.source_specs import SourceSpecError, source_id_for, too_many_sources

from .redis_conn import dumps, loads

SOURCES = "gm:sources"
RESTARTS = "gm:restarts"


def specs(r) -> dict[str, dict]:
    """Every registered source: id → spec (with ``id`` and ``hop``)."""
    out = {}
    for sid, text in sorted(r.hgetall(SOURCES).items()):
        spec = loads(text)
        if isinstance(spec, dict):
            out[sid] = spec
    return out


def ids(r) -> list[str]:
    return sorted(r.hkeys(SOURCES))


def add(r, spec: dict) -> str:
    """Register ``spec`` under a fresh id (``spec["id"]`` if given); raises ``SourceSpecError``,
    also past ``config.MAX_SOURCES``, the single process's limit."""
    def register(pipe) -> str:  # WATCH/MULTI: another web process may add meanwhile; then read again
        taken = set(pipe.hkeys(SOURCES))
        if len(taken) >= MAX_SOURCES:
            raise SourceSpecError(too_many_sources(len(taken)))
        sid = source_id_for(spec, taken=taken)
        pipe.multi()
        pipe.hset(SOURCES, sid, dumps({**spec, "id": sid}))
        pipe.hdel(RESTARTS, sid)
        return sid

    return r.transaction(register, SOURCES, value_from_callable=True)


def queue_remove(pipe, source_id: str) -> None:
    """Queue the unregistering of a source (its worker then stops it) on ``pipe``, in a transaction
    that also drops what belongs to it (``shared_settings.remove_source``)."""
    pipe.hdel(SOURCES, source_id)
    pipe.hdel(RESTARTS, source_id)


def request_restart(r, source_id: str) -> int:
    return int(r.hincrby(RESTARTS, source_id, 1))


def restarts(r) -> dict[str, int]:
    return {k: int(v) for k, v in r.hgetall(RESTARTS).items()}
