"""Trained genre models: the pretrained musicnn backbone(s) plus a small genre head.

Heads load from ``models/<name>/`` (``model.json`` + ``weights.npz``, or ``model.keras``
for the from-scratch CNN) with numpy only: no training code.
"""

from __future__ import annotations

import os

import numpy as np

from .genre_model import GenreModel, ModelError, backbone_features
from .head_forward import ensemble_forward, head_members, member_weights, n_outputs
from .level import StreamLevels, normalize_level
from .model_format import read_model_json
from .tag_features import TagSet
from .zeroshot import shrink_toward_tags


def apply_prior(probs: np.ndarray, outputs: dict[str, np.ndarray], labels: list[str],
                prior: dict | None) -> np.ndarray:
    """A head's probabilities with its prior applied (``{"kind": "zeroshot", "weight": w}``), if any."""
    if not prior:
        return probs
    if prior.get("kind") != "zeroshot":
        raise ModelError(f"Unknown head prior {prior.get('kind')!r}.")
    return shrink_toward_tags(probs, outputs, labels, float(prior["weight"]))


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
