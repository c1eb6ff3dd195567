"""The interface every audio source shares.

A source delivers float32 mono blocks at its native rate to one callback, from
its own thread (a PortAudio callback, a decoder thread, an ffmpeg reader). The
callback must be cheap: it only copies into the ring buffer.
"""

from __future__ import annotations

import threading
from enum import StrEnum
from typing import Callable

import numpy as np

BlockCallback = Callable[[np.ndarray], None]


class SourceState(StrEnum):
    """What a source is doing; the dashboard receives the values (``/api/contract``)."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"  # a network stream waiting to come back
    LOST = "lost"  # a capture device vanished mid-stream
    STOPPED = "stopped"
    ENDED = "ended"  # a file or stream reached its end
    ERROR = "error"


class Source:
    """Base class: subclasses implement ``_run`` or override ``start``/``stop``.

    Attributes a pipeline and the dashboard read:
      ``kind``        'mic', 'file', ...
      ``label``       human-readable description
      ``samplerate``  native rate of delivered blocks (known once started)
      ``state``       'idle' | 'running' | 'stopped' | 'ended' | 'error'
      ``error``       message for the user when state == 'error'
      ``overflows``   input overflows reported by the driver
      ``notice``      last non-fatal message for the user (e.g. rate fallback)
    """

    kind = "source"

    def __init__(self, label: str):
        self.label = label
        self.samplerate: int | None = None
        self.state = "idle"
        self.error: str | None = None
        self.notice: str | None = None
        self.overflows = 0
        self._on_block: BlockCallback | None = None
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None  # sources that read on a thread of their own

    def start(self, on_block: BlockCallback) -> None:
        raise NotImplementedError

    def fail(self, reason: str) -> None:
        """Enter the error state with ``reason`` for the user (the source's own failure or its pipeline's)."""
        self.error = reason
        self.state = SourceState.ERROR

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def thread(self) -> threading.Thread | None:
        """The source's own reading thread while it has one (None for callback sources and once stopped)."""
        return self._thread

    def _join_thread(self, timeout: float = 5.0) -> None:
        """Wait for the reading thread to end (never from that thread itself)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)
        self._thread = None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the reading thread ends (end, error or stop); True if it did."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "label": self.label,
            "samplerate": self.samplerate,
            "state": self.state,
            "error": self.error,
            "notice": self.notice,
            "overflows": self.overflows,
        }

    @staticmethod
    def to_mono(block: np.ndarray) -> np.ndarray:
        """Down-mix (frames, channels) or (frames,) to float32 mono."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 2:
            block = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        return np.ascontiguousarray(block, dtype=np.float32)
