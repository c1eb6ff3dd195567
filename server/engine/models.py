"""The model holder: which genre model is current, loading it, and the precision check."""

from __future__ import annotations

import logging
import threading
from typing import Callable

import numpy as np

from ..config import N_FFT, N_MELS, WINDOW_FRAMES
from ..model.content import CONTENT_LABELS, NOT_MUSIC
from ..stream.features import mel_power
from .errors import check_model_name
from .events import EventBus

log = logging.getLogger(__name__)


class ModelHolder:
    """The current model (None while none is loaded) and why loading failed.

    ``on_ready(model)`` runs when a model becomes current (the engine restarts its sources'
    windows and monitors there)."""

    def __init__(self, name: str | None, bus: EventBus, on_ready: Callable[[object], None]):
        self.name = name
        self.model = None
        self.error: str | None = None
        self._bus = bus
        self._on_ready = on_ready
        self._lock = threading.Lock()

    def current(self):
        return self.model

    def load(self, name: str | None) -> None:
        """Load a model (synchronously) and make it current; failures become a notice."""
        from ..model.registry import load_model

        try:
            model = load_model(name)
            # Build and trace the networks, and the mel filters (librosa imports in
            # seconds), now rather than on the worker at the first live window.
            model.predict(np.zeros((1, WINDOW_FRAMES, N_MELS), dtype=np.float32))
            mel_power(np.zeros(N_FFT, np.float32))
        except Exception as exc:
            self.error = f"could not load model {name or 'default'}: {exc}"
            self._bus.notice(self.error)
            self._bus.sources_changed()
            return
        self.use(model)
        self._choose_precision(name)

    def use(self, model) -> None:
        """Make a loaded ``GenreModel`` current."""
        with self._lock:
            self.model, self.name, self.error = model, model.name, None
        log.info("model %s ready (%d labels)", model.name, len(model.labels))
        self._on_ready(model)

    def _choose_precision(self, name: str | None) -> None:
        """Run the start-up precision check; the live model keeps working (in float) meanwhile."""
        from ..model import precision
        from ..model.registry import load_model

        try:
            # A second instance: the check's predictions never hold the live model's lock.
            precision.select(load_model(name))
        except Exception:  # the check is an optimisation: the model runs in float without it
            log.exception("precision check failed")
            return
        self._bus.sources_changed()

    def list_models(self) -> list[dict]:
        from ..model.registry import list_models

        return list_models()

    def select(self, name: str) -> None:
        """Check ``name``, then load it in the background."""
        check_model_name(name, self.list_models())
        threading.Thread(target=self.load, args=(name,), daemon=True).start()

    def status(self) -> dict:
        """The ``model`` part of the ``sources`` event (docs/events.md)."""
        from ..model import precision

        model = self.model
        return {
            "name": model.name if model else self.name,
            "labels": list(model.labels) if model else [],
            "content_labels": list(CONTENT_LABELS),
            "no_genre": list(NOT_MUSIC),
            "ready": model is not None,
            "error": self.error,
            "precision": precision.current(),
        }
