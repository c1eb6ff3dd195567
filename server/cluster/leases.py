"""Per-source leases: ``gm:lease:<id>`` holds the owning worker's id and expires unless renewed.

A worker claims a free source with SET NX PX and renews it well inside the TTL; when a
worker dies its leases lapse within ``ttl`` seconds and other workers claim them.
"""

from __future__ import annotations

PREFIX = "gm:lease:"

# Extend our own lease; take it back if it lapsed and nobody else took it (a worker that
# stalled briefly keeps its source instead of restarting it). 1: held, 0: someone else has it.
_RENEW = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def key(source_id: str) -> str:
    return PREFIX + source_id


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


def claim(r, source_id: str, owner: str, ttl: float) -> bool:
    """Take the lease if nobody holds it."""
    return bool(r.set(key(source_id), owner, nx=True, px=_ms(ttl)))


def renew(r, source_id: str, owner: str, ttl: float) -> bool:
    """Extend ``owner``'s lease; False when another worker holds it now."""
    return bool(r.eval(_RENEW, 1, key(source_id), owner, _ms(ttl)))


def renew_many(r, source_ids, owner: str, ttl: float) -> dict[str, bool]:
    """``renew`` for several sources in one round trip."""
    ids = list(source_ids)
    if not ids:
        return {}
    pipe = r.pipeline(transaction=False)
    for sid in ids:
        pipe.eval(_RENEW, 1, key(sid), owner, _ms(ttl))
    return {sid: bool(ok) for sid, ok in zip(ids, pipe.execute())}


def release(r, source_id: str, owner: str) -> bool:
    """Give the lease up, only if ``owner`` still holds it."""
    return bool(r.eval(_RELEASE, 1, key(source_id), owner))


def owners(r, source_ids) -> dict[str, str | None]:
    """Who holds each source's lease (None: free)."""
    ids = list(source_ids)
    if not ids:
        return {}
    return dict(zip(ids, r.mget([key(s) for s in ids])))
