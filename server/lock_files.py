"""Advisory lock files that name their holder: one process, or a group sharing the lock, per resource.

The lock is ``flock`` on an open file, so it goes with the process however it ends; an
exclusive holder writes its pid into the file, for the message the next claimant shows.
"""

from __future__ import annotations

import os


class LockHeld(Exception):
    """The lock is held in a way this claim cannot share. ``holder``: the exclusive holder's
    words ("pid N"), or None when a group holds it shared."""

    def __init__(self, holder: str | None):
        super().__init__(holder or "held shared")
        self.holder = holder


def claim(path, shared: bool = False):
    """Lock ``path`` (created if missing) without waiting; returns the open file: keep it for the
    process's life. Raises ``LockHeld``, or ``OSError`` when the file cannot be opened."""
    import fcntl

    lock = open(path, "a+")
    try:
        fcntl.flock(lock, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:
        held = LockHeld(None if not shared and _shared_by_others(lock) else _holder(lock))
        lock.close()
        raise held from None
    if not shared:  # the one holder says who it is; a group sharing the lock is told by the lock alone
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
    return lock


def _shared_by_others(lock) -> bool:
    import fcntl

    try:
        fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    fcntl.flock(lock, fcntl.LOCK_UN)
    return True


def _holder(lock) -> str:
    lock.seek(0)
    return lock.read(100).strip() or "another process"
