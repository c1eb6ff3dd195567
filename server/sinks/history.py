"""Durable history: every window, segment and alert per source, in SQLite or PostgreSQL.

A process that records history and answers for it (the single process) opens a ``HistoryStore``:
the writer (``history_writer``, an engine sink) with the reader's queries (``history_reader``)
on the same database. A process that only answers (a cluster's web tier) opens a reader alone
(``open_reader``); the schema, rows and SQL live in ``history_sql``.
"""

from __future__ import annotations

from .history_reader import HistoryReader, open_reader
from .history_sql import SCHEMA, SCHEMA_VERSION, StoreError
from .history_writer import HistoryWriter

__all__ = ["HistoryStore", "HistoryReader", "HistoryWriter", "StoreError", "open_store", "open_reader",
           "SCHEMA", "SCHEMA_VERSION"]


def open_store(target, **kwargs) -> "HistoryStore":
    """A history store on a file path, ``sqlite:///path`` or ``postgresql://user@host:port/db``;
    keyword arguments as for ``HistoryWriter``. Raises ``StoreError`` when it cannot be used."""
    return HistoryStore(target, **kwargs)


class HistoryStore(HistoryWriter):
    """The writer, answering the reader's queries on its own database."""

    def __init__(self, target, **kwargs):
        super().__init__(target, **kwargs)
        self.reader = HistoryReader(self.db)

    def iter_windows(self, source, t_from=None, t_to=None, limit=None):
        return self.reader.iter_windows(source, t_from, t_to, limit)

    def windows(self, source, t_from=None, t_to=None, limit=10000):
        return self.reader.windows(source, t_from, t_to, limit)

    def window_labels(self, source, t_from=None, t_to=None):
        return self.reader.window_labels(source, t_from, t_to)

    def iter_segments(self, source, t_from=None, t_to=None, limit=None):
        return self.reader.iter_segments(source, t_from, t_to, limit)

    def segments(self, source, t_from=None, t_to=None, limit=None):
        return self.reader.segments(source, t_from, t_to, limit)

    def iter_alerts(self, source, t_from=None, t_to=None, limit=None):
        return self.reader.iter_alerts(source, t_from, t_to, limit)

    def alerts(self, source, t_from=None, t_to=None, limit=None):
        return self.reader.alerts(source, t_from, t_to, limit)

    def summary(self, source, t_from=None, t_to=None):
        return self.reader.summary(source, t_from, t_to)

    def sources(self):
        return self.reader.sources()

    def has_source(self, source):
        return self.reader.has_source(source)
