"""Genre models: the pretrained musicnn backbone(s) plus a small genre head.

``GenreModel.predict(mel)`` takes log-mel windows (B,187,96) as the live path makes
them and returns genre probabilities and the non-genre tag scores shown on the
dashboard. Heads load from ``models/<name>/`` (``model.json`` + ``weights.npz``, or
``model.keras`` for the from-scratch CNN) with numpy only: no training code.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..config import N_MELS, WINDOW_FRAMES
from ..stream.features import fill_silence, mean_power_db, power_of
from .content import SILENCE_BELOW_DB as CONTENT_SILENCE_DB
from .stream_memory import StreamMemory

FORMAT = "genre-monitor-model"
# The newest format read (all older ones are): 2 added kernel heads and ensembles, 3 SVM heads,
# 4 the zero-shot prior.
FORMAT_VERSION = 4

# Per-window level normalisation, done on the mel power (a gain on the audio is a
# gain on every mel bin), so the head sees the same thing at any input level.
LEVEL_REF_DB = -6.0  # median window mean mel power of commercial music (GTZAN)
LEVEL_MAX_GAIN_DB = 30.0  # silence stays quiet instead of becoming amplified noise
# Live streams keep their gain while a window's own gain stays within this many dB
# of it, and frames keep the gain they were first normalised with (``StreamLevels``),
# so consecutive windows share identical frames, whose front-end the backbone
# computes once (``frontend.TimbralFrontEnd``).
LEVEL_HOLD_DB = 2.0

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


def level_gain_db(mel: np.ndarray, ref_db: float = LEVEL_REF_DB, max_gain_db: float = LEVEL_MAX_GAIN_DB) -> np.ndarray:
    """Per window, the gain (dB) that brings its mean mel power to ``ref_db``, at most ``max_gain_db``."""
    mel = np.asarray(mel, dtype=np.float32)
    return np.minimum(ref_db - mean_power_db(mel), max_gain_db)


def apply_gain(mel: np.ndarray, gain_db) -> np.ndarray:
    """Log-mel windows with their mel power scaled by ``gain_db`` (one per window)."""
    mel = np.asarray(mel, dtype=np.float32)
    if mel.shape[0] == 0:
        return mel
    gain = 10.0 ** (np.asarray(gain_db, dtype=np.float64) / 10.0)
    return np.log10(1e4 * power_of(mel) * gain[:, None, None] + 1.0).astype(np.float32)


def normalize_level(mel: np.ndarray, ref_db: float = LEVEL_REF_DB,
                    max_gain_db: float = LEVEL_MAX_GAIN_DB) -> np.ndarray:
    """Rescale each window's mel power so its mean is ``ref_db`` (log-mel in, log-mel out)."""
    return apply_gain(mel, level_gain_db(mel, ref_db, max_gain_db))


class StreamLevels:
    """Level normalisation for live streams whose consecutive windows overlap.

    A window's new frames get the stream's gain — its own exact gain
    (``level_gain_db``), or the gain in use while that stays within ``hold_db`` —
    and frames it shares with the stream's previous window keep the values they
    had there. So every frame is normalised once, consecutive windows share
    bit-identical frames, and the backbone computes their front-end once.
    Windows outside a stream (``streams`` None, or a None entry) get their exact gain.
    """

    def __init__(self, hold_db: float = LEVEL_HOLD_DB):
        self.hold_db = hold_db
        self._memory = StreamMemory()  # per stream: the last window's raw and normalised rows, its gain

    def __call__(self, mel: np.ndarray, streams=None) -> np.ndarray:
        gains = level_gain_db(mel)
        out = apply_gain(mel, gains) if streams is None else np.empty_like(mel)
        for b, item in enumerate(streams or ()):
            if item is None or item[0] is None:
                out[b] = apply_gain(mel[b:b + 1], gains[b:b + 1])[0]
                continue
            key, first = item
            prev = self._memory.get(key)
            gain = gains[b]
            if prev is not None and abs(gain - prev.extra) <= self.hold_db:
                gain = prev.extra
            new = np.ones(mel.shape[1], bool)
            found = prev and StreamMemory.overlap(prev, first, mel[b], mel.shape[1])
            if found and found[0] > 0:
                d, same = found  # rows the stream already had
                out[b, :mel.shape[1] - d][same] = prev.out[d:][same]
                new[:mel.shape[1] - d] = ~same
            out[b, new] = apply_gain(mel[b:b + 1, new], [gain])[0]
            self._memory.remember(key, first, mel[b], out[b], gain)
        return out


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
        futures = [_pool.submit(_run_backbone, name, mel, streams, threads) for name in backbones]
        results = [f.result() for f in futures]
    else:
        results = [_run_backbone(name, mel, streams, None) for name in backbones]
    return {f"{name}/{key}": value for name, result in zip(backbones, results) for key, value in result.items()}


# Tag probabilities saturate near 0 and 1, where their differences carry the evidence;
# heads read them as log-odds, clipped where float32 sigmoids stop resolving them.
TAG_LOGIT_CLIP = 1e-4
DERIVED_OUTPUTS = ("tag_logits", "genre_tag_logits")


@functools.cache
def genre_tag_columns(backbone: str) -> tuple[int, ...]:
    """Indices of a backbone's tags that name a genre or style (``GENRE_TAGS``)."""
    from .musicnn import tag_names

    return tuple(i for i, name in enumerate(tag_names(backbone)) if name.lower() in GENRE_TAGS)


def feature(outputs: dict[str, np.ndarray], key: str) -> np.ndarray:
    """One backbone output, or one derived from its tags: ``<backbone>/tag_logits`` (the log-odds
    of every tag) or ``<backbone>/genre_tag_logits`` (those of its genre and style tags)."""
    backbone, name = key.split("/", 1)
    if name not in DERIVED_OUTPUTS:
        return outputs[key]
    p = np.clip(outputs[f"{backbone}/tags"].astype(np.float64), TAG_LOGIT_CLIP, 1.0 - TAG_LOGIT_CLIP)
    if name == "genre_tag_logits":
        p = p[:, list(genre_tag_columns(backbone))]
    return np.log(p / (1.0 - p))


def assemble(outputs: dict[str, np.ndarray], feature_keys: list[str]) -> np.ndarray:
    """Concatenate the chosen (possibly derived, see ``feature``) outputs into one (B, d) matrix."""
    return np.concatenate([feature(outputs, k) for k in feature_keys], axis=1).astype(np.float32)


def rbf_map(z: np.ndarray, centers: np.ndarray, gamma: float, centers_sq: np.ndarray | None = None) -> np.ndarray:
    """Gaussian kernel values exp(−γ‖z − c‖²) of each row of ``z`` against each centre.

    ``centers_sq`` (‖c‖² per centre) may be passed precomputed: for one live window it
    costs ten times the distances themselves.
    """
    if centers_sq is None:
        centers_sq = (centers * centers).sum(1)
    d2 = (z * z).sum(1, keepdims=True) - 2.0 * z @ centers.T + centers_sq
    return np.exp(-gamma * np.maximum(d2, 0.0))


def _n_layers(weights: dict[str, np.ndarray]) -> int:
    return sum(1 for k in weights if k.startswith("W"))


_KIND_VERSION = {"kernel": 2, "ensemble": 2, "svm": 3}
PRIOR_VERSION = 4  # a head shrunk toward the zero-shot tag map (``head["prior"]``)


def format_version(head: dict) -> int:
    """The oldest model format that can read this head (``model.json``'s ``head``): older readers stay usable."""
    kinds = [head["kind"]] + [m["spec"]["kind"] for m in head.get("members", ())]
    return max([_KIND_VERSION.get(kind, 1) for kind in kinds] + ([PRIOR_VERSION] if head.get("prior") else []))


def pairwise_coupling(r: np.ndarray, pairs: np.ndarray, n_labels: int) -> np.ndarray:
    """Class probabilities (B, n_labels) from pairwise ones, as libsvm couples them.

    ``r[:, p]`` is P(class ``pairs[p, 0]`` | the class is one of ``pairs[p]``). The result
    minimises Σ_t Σ_{j≠t} (r_jt p_t − r_tj p_j)² with Σ p = 1 (Wu, Lin & Weng 2004, method 2),
    solved exactly through its KKT system (Q is singular when the r are consistent).
    Labels in no pair get probability 0.
    """
    classes = np.unique(pairs)
    a, b = np.searchsorted(classes, pairs[:, 0]), np.searchsorted(classes, pairs[:, 1])
    r = np.clip(np.asarray(r, np.float64), 1e-7, 1 - 1e-7)
    k = len(classes)
    R = np.zeros((len(r), k, k))  # R[:, i, j] = P(i | i or j)
    R[:, a, b] = r
    R[:, b, a] = 1.0 - r
    Rt = R.transpose(0, 2, 1)
    kkt = np.zeros((len(r), k + 1, k + 1))  # [[Q, 1], [1ᵀ, 0]] [p; λ] = [0; 1]
    kkt[:, :k, :k] = -Rt * R
    kkt[:, np.arange(k), np.arange(k)] = (Rt ** 2).sum(axis=2)
    kkt[:, :k, k] = kkt[:, k, :k] = 1.0
    rhs = np.zeros((len(r), k + 1, 1))
    rhs[:, k] = 1.0
    p = np.maximum(np.linalg.solve(kkt, rhs)[:, :k, 0], 0.0)
    out = np.zeros((len(r), n_labels), np.float32)
    out[:, classes] = p / p.sum(axis=1, keepdims=True)
    return out


def dense_forward(x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """Standardise, map onto kernel centres (kernel and SVM heads), dense layers (ReLU between),
    then softmax, or for an SVM's one-vs-one decisions Platt sigmoids and pairwise coupling."""
    h = (x - weights["mean"]) / weights["scale"]
    if "centers" in weights:
        h = rbf_map(h, weights["centers"], float(weights["gamma"]), weights.get("centers_sq"))
    n_layers = _n_layers(weights)
    for i in range(n_layers):
        h = h @ weights[f"W{i}"] + weights[f"b{i}"]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
    if "pairs" in weights:
        r = 1.0 / (1.0 + np.exp(-(weights["platt_a"] * h + weights["platt_b"])))
        return pairwise_coupling(r, weights["pairs"].astype(int), int(weights["n_labels"]))
    return softmax(h)


def n_outputs(weights: dict[str, np.ndarray]) -> int:
    """How many labels a member head scores."""
    if "pairs" in weights:
        return int(weights["n_labels"])
    return weights[f"b{_n_layers(weights) - 1}"].shape[0]


def member_weights(weights: dict[str, np.ndarray], n_members: int) -> list[dict[str, np.ndarray]]:
    """Split an ensemble's ``m<j>.<name>`` arrays into one weight dict per member, ready to run
    (with the kernel centres' squared norms, which ``rbf_map`` would otherwise redo per call)."""
    if n_members == 1 and not any(k.startswith("m0.") for k in weights):
        members = [dict(weights)]
    else:
        members = [{k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith(f"m{j}.")}
                   for j in range(n_members)]
    for w in members:
        if "centers" in w:
            w["centers_sq"] = (w["centers"] * w["centers"]).sum(1)
    return members


def head_members(meta: dict) -> list[tuple[list[str], dict]]:
    """Each member head's ``(feature keys, spec)`` (one member unless ``head.kind`` is ``ensemble``)."""
    head = meta.get("head", {})
    if head.get("kind") == "ensemble":
        return [(list(m["keys"]), m["spec"]) for m in head["members"]]
    return [(list(meta["features"]["keys"]), head)]


def ensemble_forward(outputs: dict[str, np.ndarray], members: list[tuple[list[str], dict]]) -> np.ndarray:
    """Mean of the member heads' probabilities, each on its own backbone outputs."""
    probs = [dense_forward(assemble(outputs, keys), w) for keys, w in members]
    return probs[0] if len(probs) == 1 else np.mean(probs, axis=0)


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
