"""Genre models: the pretrained musicnn backbone(s) plus a small genre head.

``GenreModel.predict(mel)`` takes log-mel windows (B,187,96) as the live path makes
them and returns genre probabilities and the non-genre tag scores shown on the
dashboard. Heads load from ``models/<name>/`` (``model.json`` + ``weights.npz``, or
``model.keras`` for the from-scratch CNN) with numpy only: no training code.
"""

from __future__ import annotations

import json
import os
import threading

import numpy as np

FORMAT = "genre-monitor-model"
FORMAT_VERSION = 1

# Per-window level normalisation, done on the mel power (a gain on the audio is a
# gain on every mel bin), so the head sees the same thing at any input level.
LEVEL_REF_DB = -6.0  # median window mean mel power of commercial music (GTZAN)
LEVEL_MAX_GAIN_DB = 30.0  # silence stays quiet instead of becoming amplified noise

# Backbone tags that name a genre or style; the rest (instruments, voice, mood,
# decades) are the dashboard's descriptive tags.
GENRE_TAGS = {
    "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz", "metal",
    "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues", "hard rock", "ambient",
    "experimental", "hip-hop", "country", "easy listening", "funk", "electro", "heavy metal",
    "progressive rock", "rnb", "indie pop", "house", "classical", "techno", "indian", "opera", "new age",
    "classic",
}


class ModelError(Exception):
    """A model directory is missing, damaged or from an unknown format; message for the user."""


def normalize_level(mel: np.ndarray, ref_db: float = LEVEL_REF_DB,
                    max_gain_db: float = LEVEL_MAX_GAIN_DB) -> np.ndarray:
    """Rescale each window's mel power so its mean is ``ref_db`` (log-mel in, log-mel out)."""
    mel = np.asarray(mel, dtype=np.float32)
    if mel.shape[0] == 0:
        return mel
    power = (np.power(10.0, mel.astype(np.float64)) - 1.0) / 1e4
    mean = power.reshape(len(power), -1).mean(axis=1)
    gain = np.minimum(10.0 ** (ref_db / 10.0) / np.maximum(mean, 1e-20), 10.0 ** (max_gain_db / 10.0))
    return np.log10(1e4 * power * gain[:, None, None] + 1.0).astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class TagSet:
    """Descriptive (non-genre) tags of some backbones, deduplicated; a shared name scores the max."""

    def __init__(self, backbones: list[str]):
        from .musicnn import tag_names

        self.backbones = list(backbones)
        self.names: list[str] = []
        self._sources: list[list[tuple[int, int]]] = []
        index: dict[str, int] = {}
        for b, backbone in enumerate(self.backbones):
            for i, name in enumerate(tag_names(backbone)):
                key = name.lower()
                if key in GENRE_TAGS:
                    continue
                if key not in index:
                    index[key] = len(self.names)
                    self.names.append(name)
                    self._sources.append([])
                self._sources[index[key]].append((b, i))

    def scores(self, tags_per_backbone: list[np.ndarray]) -> np.ndarray:
        n = tags_per_backbone[0].shape[0] if tags_per_backbone else 0
        out = np.zeros((n, len(self.names)), np.float32)
        for j, sources in enumerate(self._sources):
            out[:, j] = np.max([tags_per_backbone[b][:, i] for b, i in sources], axis=0)
        return out


def check_mel(mel) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 3 or mel.shape[1:] != (187, 96):
        raise ValueError(f"Expected log-mel windows of shape (B, 187, 96); got {mel.shape}.")
    return mel


class GenreModel:
    """Base class: ``predict(mel) -> (probs (B,L), tags (B,T))``; one caller at a time."""

    name: str = ""
    labels: list[str] = []
    uncertain_threshold: float | None = None
    tag_names: list[str] = []
    description: str = ""

    def __init__(self):
        self._lock = threading.Lock()

    def predict(self, mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mel = check_mel(mel)
        if mel.shape[0] == 0:
            return (np.zeros((0, len(self.labels)), np.float32), np.zeros((0, len(self.tag_names)), np.float32))
        with self._lock:
            return self._predict(mel)

    def _predict(self, mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def is_uncertain(self, probs_row) -> bool:
        """Top probability below the calibrated threshold ("better to say I don't know")."""
        if self.uncertain_threshold is None:
            return False
        return float(np.max(probs_row)) < self.uncertain_threshold

    def info(self) -> dict:
        return {"name": self.name, "labels": list(self.labels), "description": self.description}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self.labels)} labels)"


def backbone_features(mel: np.ndarray, backbones: list[str], level_norm: bool = True) -> dict[str, np.ndarray]:
    """``{"<backbone>/<output>": array}`` for log-mel windows (the training features too).

    The backbones run on the backend ``GENRE_MONITOR_BACKEND`` picks (``server.model.fast``).
    """
    from .fast import get_backbone

    if level_norm:
        mel = normalize_level(mel)
    out = {}
    for name in backbones:
        for key, value in get_backbone(name)(mel).items():
            out[f"{name}/{key}"] = value
    return out


def assemble(outputs: dict[str, np.ndarray], feature_keys: list[str]) -> np.ndarray:
    """Concatenate the chosen backbone outputs into one (B, d) feature matrix."""
    return np.concatenate([outputs[k] for k in feature_keys], axis=1).astype(np.float32)


def dense_forward(x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """Standardise, then dense layers (ReLU between), softmax: the head's forward pass."""
    h = (x - weights["mean"]) / weights["scale"]
    n_layers = sum(1 for k in weights if k.startswith("W"))
    for i in range(n_layers):
        h = h @ weights[f"W{i}"] + weights[f"b{i}"]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
    return softmax(h)


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
    """Backbone outputs → standardise → dense head (logistic regression or a small MLP)."""

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
        self.feature_keys = list(feats["keys"])
        self.level_norm = bool(feats.get("level_norm", True))
        try:
            with np.load(os.path.join(directory, meta.get("weights", "weights.npz"))) as z:
                self.weights = {k: z[k].astype(np.float32) for k in z.files}
        except (OSError, ValueError) as err:
            raise ModelError(f"Cannot read the weights of model {self.name!r}: {err}") from err
        if self.weights[f"b{sum(1 for k in self.weights if k.startswith('W')) - 1}"].shape[0] != len(self.labels):
            raise ModelError(f"Model {self.name!r}: weights do not match its {len(self.labels)} labels.")
        self.tagset = TagSet(self.backbones)
        self.tag_names = self.tagset.names

    def _predict(self, mel):
        outputs = backbone_features(mel, self.backbones, self.level_norm)
        probs = dense_forward(assemble(outputs, self.feature_keys), self.weights)
        tags = self.tagset.scores([outputs[f"{b}/tags"] for b in self.backbones])
        return probs, tags


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

    def _predict(self, mel):
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
