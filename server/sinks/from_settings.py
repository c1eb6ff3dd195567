"""The sinks a process runs, built from its settings: the history writer and the alert webhook.

The single process (``serve``) and every cluster worker build them here alike, so a sink
configured in ``settings.json`` runs wherever sources run. A cluster's web tier runs no
sources: it only answers history queries, through ``open_history_reader``. A sink that cannot
be set up is logged and left out: monitoring goes on without it rather than not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .history import HistoryReader, HistoryStore, StoreError, open_reader, open_store
from .webhook import AlertWebhook, WebhookError, WebhookSender

log = logging.getLogger("genre-monitor")


@dataclass
class Sinks:
    """The configured sinks; ``history`` also answers the history API of its process."""
    history: HistoryStore | None = None
    webhook: AlertWebhook | None = None

    def all(self) -> list:
        """Every sink to add to the engine, in the order events reach them."""
        return [s for s in (self.history, self.webhook) if s is not None]

    def close(self) -> None:
        """Commit what the history holds and deliver queued alerts (briefly), then stop."""
        for sink in self.all():
            sink.close()


def build_sinks(settings, history=None) -> Sinks:
    """The sinks ``settings`` asks for (a mapping with ``server.settings``' keys ``retention_days``
    and ``webhook``); ``history``: where to write it (a path, ``sqlite:///…`` or
    ``postgresql://…``), None for no history."""
    return Sinks(history=_history_writer(history, settings["retention_days"]),
                 webhook=_webhook(settings["webhook"]))


def open_history_reader(target) -> HistoryReader | None:
    """A reader of the history at ``target`` (None: no history), for a process that writes none."""
    if not target:
        return None
    try:
        return open_reader(target)
    except StoreError as exc:
        log.error("history disabled: %s", exc)
        return None


def _history_writer(target, retention_days) -> HistoryStore | None:
    if not target:
        return None
    try:
        return open_store(target, retention_days=float(retention_days))
    except StoreError as exc:
        log.error("history disabled: %s", exc)
        return None


def _webhook(url) -> AlertWebhook | None:
    if not url:
        return None
    try:
        return AlertWebhook(WebhookSender(url))
    except WebhookError as exc:
        log.error("webhook disabled: %s", exc)
        return None
