"""What every genre model shares: ``GenreModel`` (``predict``/``analyse``), its ``Analysis``,
and ``backbone_features``, the backbone outputs the heads and the content head read."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..config import N_MELS, WINDOW_FRAMES
from ..stream.features import fill_silence
from .content import MUSIC, SILENCE, SILENCE_BELOW_DB, default_head, window_level_db
from .fast import default_threads, get_backbone
from .level import StreamLevels, normalize_level


class ModelError(Exception):
    """A model directory is missing, damaged or from an unknown format; message for the user."""


def check_mel(mel) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 3 or mel.shape[1:] != (WINDOW_FRAMES, N_MELS):
        raise ValueError(f"Expected log-mel windows of shape (B, {WINDOW_FRAMES}, {N_MELS}); got {mel.shape}.")
    return mel


@dataclass
class Analysis:
    """One batch's results: genre ``probs`` (B,L), ``tags`` (B,T), and per window its ``content``
    (``content.CONTENT_LABELS``), ``content_probs`` (B, len(content_labels)) over the content
    head's labels (zeros without a head) and ``level_db`` (the window's level, ≈ dBFS)."""

    probs: np.ndarray
    tags: np.ndarray
    content: list[str]
    content_probs: np.ndarray
    content_labels: list[str]
    level_db: np.ndarray


class GenreModel:
    """Base class: ``predict(mel, streams=None) -> (probs (B,L), tags (B,T))``; one caller at a time.

    ``analyse(mel, streams=None) -> Analysis`` adds each window's content (music, speech,
    silence, noise), decided by ``content.ContentHead`` on the same backbone outputs.

    ``streams`` (live use) gives per window ``(key, first_frame)``: the stream it
    belongs to and where it starts on that stream's frame grid, or None. Models
    may use it to reuse work between a stream's overlapping windows.
    """

    name: str = ""
    labels: list[str] = []
    uncertain_threshold: float | None = None
    tag_names: list[str] = []
    description: str = ""

    def __init__(self):
        self._lock = threading.Lock()
        self._content_levels = StreamLevels()  # for a content head that needs backbones this model lacks

    content_head = None  # ``content.default_head()`` unless set (no head installed: only silence is told apart)

    def predict(self, mel: np.ndarray, streams=None) -> tuple[np.ndarray, np.ndarray]:
        """Silent frames are filled with the window's own sound first (``features.fill_silence``)."""
        a = self.analyse(mel, streams)
        return a.probs, a.tags

    def analyse(self, mel: np.ndarray, streams=None) -> Analysis:
        """Genre probabilities, tags and each window's content, from one pass of the backbones."""
        mel = check_mel(mel)
        level = window_level_db(mel)
        mel = fill_silence(mel)
        if streams is not None and len(streams) != mel.shape[0]:
            raise ModelError(f"{len(streams)} stream keys for {mel.shape[0]} windows")
        head = self.content_head if self.content_head is not None else default_head()
        head_labels = list(head.head_labels) if head else []
        if mel.shape[0] == 0:
            return Analysis(np.zeros((0, len(self.labels)), np.float32), np.zeros((0, len(self.tag_names)), np.float32),
                            [], np.zeros((0, len(head_labels)), np.float32), head_labels, level)
        with self._lock:
            result = self._predict(mel, streams)
            probs, tags = result[0], result[1]
            if head is None:
                cprobs = np.zeros((len(mel), 0), np.float32)
                content = [SILENCE if lv < SILENCE_BELOW_DB else MUSIC for lv in level]
            else:
                outputs = dict(result[2]) if len(result) > 2 else {}
                missing = [b for b in head.backbones if f"{b}/tags" not in outputs]
                if missing:  # a model without these backbones: run them for the content head
                    outputs.update(backbone_features(self._content_levels(mel, streams), missing,
                                                     level_norm=False, streams=streams))
                cprobs = head.probabilities(outputs)
                content = head.decide(cprobs, level)
        return Analysis(probs, tags, content, cprobs, head_labels, level)

    def _predict(self, mel: np.ndarray, streams=None) -> tuple:
        """``(probs, tags)`` or ``(probs, tags, backbone outputs)`` (the content head reuses them)."""
        raise NotImplementedError

    def is_uncertain(self, probs_row) -> bool:
        """Top probability below the calibrated threshold ("better to say I don't know")."""
        if self.uncertain_threshold is None:
            return False
        return float(np.max(probs_row)) < self.uncertain_threshold

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self.labels)} labels)"


_pool: ThreadPoolExecutor | None = None


def _run_backbone(name: str, mel: np.ndarray, streams, threads: int | None) -> dict[str, np.ndarray]:
    backbone = get_backbone(name, threads=threads)
    return backbone(mel, streams)


def backbone_features(mel: np.ndarray, backbones: list[str], level_norm: bool = True,
                      streams=None) -> dict[str, np.ndarray]:
    """``{"<backbone>/<output>": array}`` for log-mel windows (the training features too).

    The backbones run on the backend ``GENRE_MONITOR_BACKEND`` picks (``server.model.fast``),
    side by side on the cores when there are several: each on its own thread beats
    every network splitting its small convolutions across threads.
    """
    global _pool
    if level_norm:
        mel = normalize_level(mel)
    cores = default_threads()
    if len(backbones) > 1 and cores > 1:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="backbone")
        threads = max(1, cores // len(backbones))
        # Each task runs in the caller's context, so a precision set for this call (fast.precision) holds.
        futures = [_pool.submit(contextvars.copy_context().run, _run_backbone, name, mel, streams, threads)
                   for name in backbones]
        results = [f.result() for f in futures]
    else:
        results = [_run_backbone(name, mel, streams, None) for name in backbones]
    return {f"{name}/{key}": value for name, result in zip(backbones, results) for key, value in result.items()}
