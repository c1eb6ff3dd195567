"""Settings every worker follows, kept in the Redis hash ``gm:settings``.

Fields (JSON): ``rules`` (registered source id → rules), ``smoothing``, ``segments``, ``model``.
The web tier validates and writes them; workers read them on every poll. A source's rules are
written only while it is registered and go with it when it is removed, as in the single process.
"""

from __future__ import annotations

from server.settings import DEFAULTS

from . import registry
from .redis_conn import dumps, loads

KEY = "gm:settings"
FIELDS = ("rules", "smoothing", "segments", "model")


def read(r) -> dict:
    raw = r.hgetall(KEY)
    out = {"rules": dict(DEFAULTS["rules"]), "smoothing": DEFAULTS["smoothing"],
           "segments": DEFAULTS["segments"], "model": None}
    for name in FIELDS:
        if name in raw:
            value = loads(raw[name])
            if value is not None:
                out[name] = value
    return out


def update(r, **changes) -> None:
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown shared setting(s): {', '.join(sorted(unknown))}")
    if changes:
        r.hset(KEY, mapping={k: dumps(v) for k, v in changes.items()})


def set_rules(r, source_id: str, rules: list) -> bool:
    """Store one registered source's rules; False (nothing stored) when it is not registered."""
    # WATCH/MULTI on the rules and the registry: two web processes setting rules of different
    # sources must not lose one, and rules never outlive a source removed meanwhile.
    def store(pipe) -> bool:
        if not pipe.hexists(registry.SOURCES, source_id):
            return False
        current = _rules(pipe)
        current[source_id] = rules
        pipe.multi()
        pipe.hset(KEY, "rules", dumps(current))
        return True

    return r.transaction(store, KEY, registry.SOURCES, value_from_callable=True)


def remove_source(r, source_id: str) -> bool:
    """Unregister a source and delete its rules, in one transaction; False when there was none."""
    def remove(pipe) -> bool:
        if not pipe.hexists(registry.SOURCES, source_id):
            return False
        current = _rules(pipe)
        pipe.multi()
        registry.queue_remove(pipe, source_id)
        if source_id in current:
            del current[source_id]
            pipe.hset(KEY, "rules", dumps(current))
        return True

    return r.transaction(remove, KEY, registry.SOURCES, value_from_callable=True)


def sweep_rules(r) -> list[str]:
    """Delete the rules of sources no longer registered (left by a version that kept them, or by
    hand); returns their ids. One transaction, like the writes above."""
    def sweep(pipe) -> list[str]:
        current = _rules(pipe)
        registered = set(pipe.hkeys(registry.SOURCES))
        gone = sorted(set(current) - registered)
        if gone:
            pipe.multi()
            pipe.hset(KEY, "rules", dumps({sid: v for sid, v in current.items() if sid in registered}))
        return gone

    return r.transaction(sweep, KEY, registry.SOURCES, value_from_callable=True)


def _rules(pipe) -> dict:
    current = loads(pipe.hget(KEY, "rules"), {})
    return current if isinstance(current, dict) else {}
