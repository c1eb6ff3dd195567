"""An engine sink that keeps every event it is given (as its JSON payload), for tests."""

from __future__ import annotations

import threading

from server.sinks.payloads import prediction_payload


class Collector:
    """Attach with ``engine.add_sink(Collector())``; every event lands in a list."""

    def __init__(self):
        self.predictions, self.spectrograms, self.sources = [], [], []
        self.notices, self.segments, self.alerts = [], [], []
        self.lock = threading.Lock()  # the worker thread appends while the test reads

    def _keep(self, where: list, payload: dict) -> None:
        with self.lock:
            where.append(payload)

    def on_prediction(self, record):
        self._keep(self.predictions, prediction_payload(record))  # kept as the dashboard receives it

    def on_spectrogram(self, p):
        self._keep(self.spectrograms, p)

    def on_sources(self, p):
        self._keep(self.sources, p)

    def on_notice(self, p):
        self._keep(self.notices, p)

    def on_segment(self, p):
        self._keep(self.segments, p)

    def on_alert(self, p):
        self._keep(self.alerts, p)

    def states(self) -> list[str]:
        """Every source state reported so far, in order."""
        with self.lock:
            return [s["state"] for payload in self.sources for s in payload["sources"]]

    def state_maps(self) -> list[dict]:
        """Each ``sources`` event as {source id: state}."""
        with self.lock:
            return [{s["id"]: s["state"] for s in payload["sources"]} for payload in self.sources]

    def count(self, source_id: str) -> int:
        """Predictions received so far for one source."""
        with self.lock:
            return sum(p["source"] == source_id for p in self.predictions)
