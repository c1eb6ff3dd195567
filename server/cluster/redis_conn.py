"""Connecting to Redis, with a user-readable error when it is not there."""

from __future__ import annotations

import json


class ClusterError(Exception):
    """Redis is unreachable or holds something unusable; the message is for the user."""


def connect(url: str, timeout: float = 5.0):
    """A ``redis.Redis`` for ``url`` (``redis://host:port/db``) that answers str; checked with PING."""
    import redis

    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ClusterError(f"not a Redis URL: {url!r} (use redis://HOST:PORT/DB)")
    try:
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                      socket_connect_timeout=timeout, health_check_interval=30)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise ClusterError(f"cannot reach Redis at {url}: {exc}") from None
    return client


def loads(text, default=None):
    """JSON from Redis; a missing or damaged value gives ``default``."""
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))
