"""Polling for a condition that another thread or process makes true."""
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05,
               message: str | Callable[[], object] | None = None) -> T:
    """Call ``predicate`` every ``interval`` s until it returns a truthy value, and return that value.

    After ``timeout`` s without one, fail with an ``AssertionError`` naming the last value and ``message``
    (a callable is called only then, so it can report the state at the time of failure).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    detail = message() if callable(message) else message
    raise AssertionError(f"not true within {timeout:g} s (last value {value!r})" + (f": {detail}" if detail else ""))


def poll(predicate: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """Like ``wait_until``, but return the last value, truthy or not, when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
