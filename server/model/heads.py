"""Genre models: the pretrained musicnn backbone(s) plus a small genre head.

``GenreModel.predict(mel)`` takes log-mel windows (B,187,96) as the live path makes
them and returns genre probabilities and the non-genre tag scores shown on the
dashboard. Heads load from ``models/<name>/`` (``model.json`` + ``weights.npz``, or
``model.keras`` for the from-scratch CNN) with numpy only: no training code.
"""

from __future__ import annotations

import contextvars
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..config import N_MELS, WINDOW_FRAMES
from ..stream.features import fill_silence
from .content import SILENCE_BELOW_DB as CONTENT_SILENCE_DB
from .head_forward import ensemble_forward, head_members, member_weights, n_outputs
from .level import StreamLevels, normalize_level
from .tag_features import TagSet

FORMAT = "genre-monitor-model"
# The newest format read (all older ones are): 2 added kernel heads and ensembles, 3 SVM heads,
# 4 the zero-shot prior.
FORMAT_VERSION = 4


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
        from .content import MUSIC, SILENCE, default_head, window_level_db

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
                content = [SILENCE if lv < CONTENT_SILENCE_DB else MUSIC for lv in level]
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
    from .fast import get_backbone

    backbone = get_backbone(name, threads=threads)
    return backbone(mel, streams)


def backbone_features(mel: np.ndarray, backbones: list[str], level_norm: bool = True,
                      streams=None) -> dict[str, np.ndarray]:
    """``{"<backbone>/<output>": array}`` for log-mel windows (the training features too).

    The backbones run on the backend ``GENRE_MONITOR_BACKEND`` picks (``server.model.fast``),
    side by side on the cores when there are several: each on its own thread beats
    every network splitting its small convolutions across threads.
    """
    from .fast import default_threads

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


_KIND_VERSION = {"kernel": 2, "ensemble": 2, "svm": 3}
PRIOR_VERSION = 4  # a head shrunk toward the zero-shot tag map (``head["prior"]``)


def format_version(head: dict) -> int:
    """The oldest model format that can read this head (``model.json``'s ``head``): older readers stay usable."""
    kinds = [head["kind"]] + [m["spec"]["kind"] for m in head.get("members", ())]
    return max([_KIND_VERSION.get(kind, 1) for kind in kinds] + ([PRIOR_VERSION] if head.get("prior") else []))


def apply_prior(probs: np.ndarray, outputs: dict[str, np.ndarray], labels: list[str],
                prior: dict | None) -> np.ndarray:
    """A head's probabilities with its prior applied (``{"kind": "zeroshot", "weight": w}``), if any."""
    if not prior:
        return probs
    if prior.get("kind") != "zeroshot":
        raise ModelError(f"Unknown head prior {prior.get('kind')!r}.")
    from .zeroshot import shrink_toward_tags

    return shrink_toward_tags(probs, outputs, labels, float(prior["weight"]))


def read_model_json(directory: str) -> dict:
    path = os.path.join(directory, "model.json")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError as err:
        raise ModelError(f"{directory} is not a model directory (no model.json).") from err
    except (OSError, ValueError) as err:
        raise ModelError(f"Cannot read {path}: {err}") from err
    if meta.get("format") != FORMAT or int(meta.get("version", 0)) > FORMAT_VERSION:
        raise ModelError(f"{path}: unknown model format {meta.get('format')!r} version {meta.get('version')!r}.")
    return meta


class HeadModel(GenreModel):
    """Backbone outputs → standardise → head(s): logistic regression, kernel, SVM, small MLP, or their mean."""

    def __init__(self, directory: str, meta: dict | None = None):
        super().__init__()
        meta = meta or read_model_json(directory)
        self.directory = directory
        self.meta = meta
        self.name = meta.get("name") or os.path.basename(os.path.normpath(directory))
        self.labels = list(meta["labels"])
        self.uncertain_threshold = meta.get("uncertain_threshold")
        self.description = meta.get("description", "")
        feats = meta["features"]
        self.backbones = list(feats["backbones"])
        self.level_norm = bool(feats.get("level_norm", True))
        try:
            keys = [k for k, _ in head_members(meta)]
            with np.load(os.path.join(directory, meta.get("weights", "weights.npz"))) as z:
                weights = {k: z[k].astype(np.float32) for k in z.files}
            self.members = list(zip(keys, member_weights(weights, len(keys))))
            for _, w in self.members:
                if n_outputs(w) != len(self.labels):
                    raise ModelError(f"Model {self.name!r}: weights do not match its {len(self.labels)} labels.")
        except (OSError, ValueError, KeyError) as err:
            raise ModelError(f"Cannot read the weights of model {self.name!r}: {err!r}") from err
        self.prior = meta.get("head", {}).get("prior")
        self.tagset = TagSet(self.backbones)
        self.tag_names = self.tagset.names
        self._levels = StreamLevels()

    def _predict(self, mel, streams=None):
        if self.level_norm:
            mel = self._levels(mel, streams)
        outputs = backbone_features(mel, self.backbones, level_norm=False, streams=streams)
        probs = apply_prior(ensemble_forward(outputs, self.members), outputs, self.labels, self.prior)
        tags = self.tagset.scores([outputs[f"{b}/tags"] for b in self.backbones])
        return probs, tags, outputs


class KerasCnnModel(GenreModel):
    """The from-scratch small CNN (``--arch small-cnn``) on log-mel windows; no tags."""

    def __init__(self, directory: str, meta: dict | None = None):
        super().__init__()
        meta = meta or read_model_json(directory)
        import keras

        self.directory, self.meta = directory, meta
        self.name = meta.get("name") or os.path.basename(os.path.normpath(directory))
        self.labels = list(meta["labels"])
        self.uncertain_threshold = meta.get("uncertain_threshold")
        self.description = meta.get("description", "")
        self.level_norm = bool(meta.get("features", {}).get("level_norm", True))
        self.tag_names = []
        try:
            self.model = keras.saving.load_model(os.path.join(directory, meta.get("weights", "model.keras")))
        except (OSError, ValueError) as err:
            raise ModelError(f"Cannot read the network of model {self.name!r}: {err}") from err

    def _predict(self, mel, streams=None):
        x = normalize_level(mel) if self.level_norm else mel
        probs = np.asarray(self.model(x[..., None], training=False), np.float32)
        probs = probs / probs.sum(axis=1, keepdims=True)
        return probs, np.zeros((len(mel), 0), np.float32)


def load_directory(directory: str) -> GenreModel:
    """A trained model from its directory (``model.json`` decides the kind)."""
    meta = read_model_json(directory)
    arch = meta.get("arch", "head")
    if arch == "head":
        return HeadModel(directory, meta)
    if arch == "small-cnn":
        return KerasCnnModel(directory, meta)
    raise ModelError(f"Model {directory}: unknown architecture {arch!r}.")
