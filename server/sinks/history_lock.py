"""One writer per SQLite history file, across processes.

Two processes writing one SQLite history (two cluster workers, or a worker and a standalone
server) would each prune it and contend for its single write lock; a shared PostgreSQL database
(``--history-url postgresql://…``) is the history for many writers. Readers (a cluster's web
tier) take no lock.
"""

from __future__ import annotations

import os

from .. import lock_files
from .history_sql import StoreError, dialect_for

LOCK_SUFFIX = "-writer.lock"  # beside the database, as SQLite's own -wal and -shm files are


class HistoryLockError(Exception):
    """Another process writes this SQLite history; the message is for the user."""


def lock_history_writer(target):
    """Claim the SQLite history at ``target`` (a path or ``sqlite:///…``) for this process's writer.

    Returns the open lock file: keep it for the process's life (the lock goes with it). None when
    there is nothing to claim: no history, PostgreSQL, or a target the writer will refuse itself
    (a bad URL, a folder it cannot write: it says why when it opens). Raises ``HistoryLockError``
    when another process holds it."""
    if not target:
        return None
    try:
        dialect = dialect_for(target)
    except StoreError:
        return None
    if dialect.name != "sqlite":
        return None
    path = os.path.realpath(dialect.path)  # one file however it is named (relative, through a link)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return lock_files.claim(path + LOCK_SUFFIX)
    except lock_files.LockHeld as held:
        raise HistoryLockError(
            f"the history database {path} is being written by another process ({held.holder}); an SQLite "
            "history takes one writer: give each server or worker its own file, or share a PostgreSQL database "
            "among them (--history-url postgresql://…)") from None
    except OSError:
        return None
