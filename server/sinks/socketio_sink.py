"""The Socket.IO sink: engine events to the dashboard's clients.

Per-source events go to the source's room (``room``), the rest to everyone.
The web layer joins clients to rooms; this module only emits.
"""

from __future__ import annotations

from ..monitor.classified import ClassifiedWindow
from .payloads import prediction_payload


def room(source_id: str) -> str:
    """The Socket.IO room of a source's clients."""
    return f"source:{source_id}"


class SocketIOSink:
    """Engine sink over a ``flask_socketio.SocketIO``.

    ``watchers`` (optional) has ``follow_new(socketio, source_ids)``: clients watching
    "everything" are joined to sources started after they connected. ``view`` (optional)
    turns the engine's status into the ``sources`` event the clients get.
    """

    def __init__(self, socketio, watchers=None, view=None):
        self.socketio = socketio
        self.watchers = watchers
        self.view = view

    def on_prediction(self, record: ClassifiedWindow) -> None:
        self.socketio.emit("prediction", prediction_payload(record), to=room(record.source))

    def on_spectrogram(self, payload: dict) -> None:
        self.socketio.emit("spectrogram", payload, to=room(payload["source"]))

    def on_sources(self, payload: dict) -> None:
        if self.watchers is not None:
            self.watchers.follow_new(self.socketio, [s["id"] for s in payload.get("sources", [])])
        self.socketio.emit("sources", self.view(payload) if self.view is not None else payload)

    def on_notice(self, payload: dict) -> None:
        self.socketio.emit("notice", payload)

    def on_segment(self, payload: dict) -> None:
        self.socketio.emit("segment", payload, to=room(payload["source"]))

    def on_alert(self, payload: dict) -> None:
        # Alerts go to everyone: the dashboard lists them for every source, watched or not.
        self.socketio.emit("alert", payload)
