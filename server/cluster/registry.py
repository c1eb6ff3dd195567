"""The shared list of sources: a Redis hash ``gm:sources`` of id → spec JSON.

The web tier adds and removes specs; workers claim them (``leases``). A restart is a
counter in ``gm:restarts`` that the owning worker watches.
"""

from __future__ import annotations

from server.source_specs import SourceSpecError, source_id_for

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
    """Register ``spec`` under a fresh id (``spec["id"]`` if given); raises ``SourceSpecError``."""
    for _ in range(20):  # another web process may take the same id between our read and write
        sid = source_id_for(spec, taken=set(r.hkeys(SOURCES)))
        if r.hsetnx(SOURCES, sid, dumps({**spec, "id": sid})):
            r.hdel(RESTARTS, sid)
            return sid
        if spec.get("id") is not None:
            raise SourceSpecError(f"a source with id {sid!r} is already running")
    raise SourceSpecError("could not find a free source id; try again")


def remove(r, source_id: str) -> bool:
    """Unregister a source (its worker then stops it); False when there was none."""
    removed = bool(r.hdel(SOURCES, source_id))
    r.hdel(RESTARTS, source_id)
    return removed


def request_restart(r, source_id: str) -> int:
    return int(r.hincrby(RESTARTS, source_id, 1))


def restarts(r) -> dict[str, int]:
    return {k: int(v) for k, v in r.hgetall(RESTARTS).items()}
