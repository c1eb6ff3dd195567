"""Settings every worker follows, kept in the Redis hash ``gm:settings``.

Fields (JSON): ``rules`` (source id → rules), ``smoothing``, ``segments``, ``model``.
The web tier validates and writes them; workers read them on every poll.
"""

from __future__ import annotations

from server.settings import DEFAULTS

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


def set_rules(r, source_id: str, rules: list) -> None:
    # WATCH/MULTI: two web processes setting rules of different sources must not lose one.
    with r.pipeline() as pipe:
        while True:
            try:
                pipe.watch(KEY)
                current = loads(pipe.hget(KEY, "rules"), {}) or {}
                current[source_id] = rules
                pipe.multi()
                pipe.hset(KEY, "rules", dumps(current))
                pipe.execute()
                return
            except Exception as exc:  # redis.WatchError: someone wrote meanwhile; read again
                if type(exc).__name__ != "WatchError":
                    raise
