"""musicnn (Pons & Serra 2019, ISC licence) ported to Keras 3, with the original weights.

The network mirrors ``musicnn.models.build_musicnn`` layer by layer; weights come
straight from the TF1 checkpoints shipped inside the ``musicnn`` package
(``pip install --no-deps musicnn==0.1.0``). Layers carry the checkpoint's scope
names (``conv2d_5``, ``batch_normalization_9``, ...) so the mapping is explicit.

Input: log-mel patches (B, 187, 96) float32, ``log10(10000·mel + 1)`` of 16-kHz audio.
"""

from __future__ import annotations

import importlib.util
import os
import threading

import numpy as np

from ..config import N_MELS
from ..config import WINDOW_FRAMES as N_FRAMES

VARIANTS = ("MSD_musicnn", "MTT_musicnn")
N_TAGS = 50
EMBEDDING_DIM = 200
POOL_DIM = 561 + 3 * 64  # front-end channels + three mid-end layers, densely concatenated
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization default

INSTALL_HINT = "pip install --no-deps musicnn==0.1.0"


class MusicnnError(Exception):
    """Problem with the musicnn backbone (missing package, bad variant, bad input)."""


class MusicnnNotInstalled(MusicnnError, ImportError):
    """The ``musicnn`` package (which ships the weights) is not installed."""


class MusicnnInputError(MusicnnError, ValueError):
    """The input patches do not have the expected shape."""


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise MusicnnError(f"Unknown musicnn variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    return variant


def package_dir() -> str:
    """Directory of the installed ``musicnn`` package (holds the checkpoints)."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.origin:
        raise MusicnnNotInstalled(
            f"The musicnn package (pretrained weights) is not installed. Install it with: {INSTALL_HINT}")
    return os.path.dirname(spec.origin)


def checkpoint_prefix(variant: str) -> str:
    """Checkpoint prefix ``<package>/<variant>/`` (files ``.index`` / ``.data-00000-of-00001``)."""
    folder = os.path.join(package_dir(), check_variant(variant))
    if not os.path.exists(os.path.join(folder, ".index")):
        raise MusicnnNotInstalled(
            f"musicnn weights for {variant} are missing in {folder}. Reinstall with: {INSTALL_HINT}")
    # The shipped `checkpoint` files name the authors' own paths, so pass the prefix itself.
    return folder + "/"


def tag_names(variant: str) -> list[str]:
    """The 50 tag names of a variant, in output order."""
    check_variant(variant)
    package_dir()  # clear error if missing
    from musicnn import configuration

    return list(configuration.MSD_LABELS if variant.startswith("MSD") else configuration.MTT_LABELS)


# --- network ----------------------------------------------------------------

TIMBRAL_WIDTHS = (int(0.4 * N_MELS), int(0.7 * N_MELS))  # (7 x 38) and (7 x 67) filters
TIMBRAL_FILTERS = 204
TIMBRAL_DIM = len(TIMBRAL_WIDTHS) * TIMBRAL_FILTERS


def build_musicnn(variant: str):
    """Keras 3 functional model of ``variant`` (weights NOT loaded; see ``load_checkpoint_weights``).

    Outputs a dict: ``tags`` (B,50) sigmoid, ``embedding`` (B,200) penultimate layer,
    ``mean_pool`` / ``max_pool`` (B,753) temporal pools of the mid-end features.
    """
    import keras

    check_variant(variant)
    layers = _musicnn_layers()
    x_in = keras.Input(shape=(N_FRAMES, N_MELS), dtype="float32", name="mel")
    return keras.Model(x_in, _forward(layers, x_in), name=variant)


def _musicnn_layers() -> dict:
    """Every layer of the network by name (the checkpoint's scope names where it has weights)."""
    from keras import layers as L

    def bn(name):
        return L.BatchNormalization(axis=-1, epsilon=BN_EPSILON, momentum=0.99, name=name)

    out = {"expand_input": L.Reshape((N_FRAMES, N_MELS, 1), name="expand_input"),
           "batch_normalization": bn("batch_normalization"),
           "input_pad_7": L.ZeroPadding2D(((3, 3), (0, 0)), name="input_pad_7")}
    # Front-end. Timbral: (7 x 38|67) filters over time-padded input, max over frequency.
    for i, (width, conv, norm) in enumerate(zip(TIMBRAL_WIDTHS, ("conv2d", "conv2d_1"),
                                                ("batch_normalization_1", "batch_normalization_2"))):
        out[conv] = L.Conv2D(TIMBRAL_FILTERS, (7, width), padding="valid", activation="relu", name=conv)
        out[norm] = bn(norm)
        out[f"timbral_pool_{i}"] = L.MaxPooling2D((1, N_MELS - width + 1), name=f"timbral_pool_{i}")
        out[f"timbral_squeeze_{i}"] = L.Reshape((N_FRAMES, TIMBRAL_FILTERS), name=f"timbral_squeeze_{i}")
    # Temporal: (128|64|32 x 1) filters, 'same' padding, max over frequency.
    for i, (length, conv, norm) in enumerate(
            [(128, "conv2d_2", "batch_normalization_3"),
             (64, "conv2d_3", "batch_normalization_4"),
             (32, "conv2d_4", "batch_normalization_5")]):
        out[conv] = L.Conv2D(51, (length, 1), padding="same", activation="relu", name=conv)
        out[norm] = bn(norm)
        out[f"temporal_pool_{i}"] = L.MaxPooling2D((1, N_MELS), name=f"temporal_pool_{i}")
        out[f"temporal_squeeze_{i}"] = L.Reshape((N_FRAMES, 51), name=f"temporal_squeeze_{i}")
    out["timbral"] = L.Concatenate(axis=-1, name="timbral")
    out["frontend"] = L.Concatenate(axis=-1, name="frontend")
    # Mid-end. The original's (7 x all-channels) 2-D convs on padded maps are 1-D convs.
    for tag, conv, norm in [("cnn1", "conv2d_5", "batch_normalization_6"), ("cnn2", "conv2d_6", "batch_normalization_7"),
                            ("cnn3", "conv2d_7", "batch_normalization_8")]:
        out[f"{tag}_pad"] = L.ZeroPadding1D(3, name=f"{tag}_pad")
        out[conv] = L.Conv1D(64, 7, padding="valid", activation="relu", name=conv)
        out[norm] = bn(norm)
    out["res_conv2"] = L.Add(name="res_conv2")
    out["res_conv3"] = L.Add(name="res_conv3")
    out["midend"] = L.Concatenate(axis=-1, name="midend")
    # Back-end.
    out["max_pool"] = L.GlobalMaxPooling1D(name="max_pool")
    out["mean_pool"] = L.GlobalAveragePooling1D(name="mean_pool")
    out["max_pool_expand"] = L.Reshape((POOL_DIM, 1), name="max_pool_expand")
    out["mean_pool_expand"] = L.Reshape((POOL_DIM, 1), name="mean_pool_expand")
    out["tmp_pool"] = L.Concatenate(axis=-1, name="tmp_pool")
    out["flat_pool"] = L.Flatten(name="flat_pool")
    out["batch_normalization_9"] = bn("batch_normalization_9")
    out["dense"] = L.Dense(EMBEDDING_DIM, activation="relu", name="dense")
    out["batch_normalization_10"] = bn("batch_normalization_10")
    out["dense_1"] = L.Dense(N_TAGS, name="dense_1")
    out["tags"] = L.Activation("sigmoid", name="tags")
    return out


def _forward(L: dict, mel) -> dict:
    """Wire the layers ``L``."""
    x = L["batch_normalization"](L["expand_input"](mel))
    x_pad = L["input_pad_7"](x)
    maps = []
    for i, (conv, norm) in enumerate([("conv2d", "batch_normalization_1"),
                                      ("conv2d_1", "batch_normalization_2")]):
        h = L[f"timbral_pool_{i}"](L[norm](L[conv](x_pad)))
        maps.append(L[f"timbral_squeeze_{i}"](h))
    front = [L["timbral"](maps)]
    for i, (conv, norm) in enumerate([("conv2d_2", "batch_normalization_3"), ("conv2d_3", "batch_normalization_4"),
                                      ("conv2d_4", "batch_normalization_5")]):
        h = L[f"temporal_pool_{i}"](L[norm](L[conv](x)))
        front.append(L[f"temporal_squeeze_{i}"](h))
    frontend = L["frontend"](front)  # (B,187,561)

    def conv1d(h, tag, conv, norm):
        return L[norm](L[conv](L[f"{tag}_pad"](h)))

    cnn1 = conv1d(frontend, "cnn1", "conv2d_5", "batch_normalization_6")
    cnn2 = L["res_conv2"]([conv1d(cnn1, "cnn2", "conv2d_6", "batch_normalization_7"), cnn1])
    cnn3 = L["res_conv3"]([conv1d(cnn2, "cnn3", "conv2d_7", "batch_normalization_8"), cnn2])
    midend = L["midend"]([frontend, cnn1, cnn2, cnn3])  # (B,187,753)

    # The original concatenates (B,753,1) max and mean maps on a new last axis
    # and flattens, so the dense input interleaves them: [max0, mean0, max1, mean1, ...].
    max_pool = L["max_pool"](midend)
    mean_pool = L["mean_pool"](midend)
    pooled = L["tmp_pool"]([L["max_pool_expand"](max_pool), L["mean_pool_expand"](mean_pool)])
    h = L["dense"](L["batch_normalization_9"](L["flat_pool"](pooled)))
    embedding = L["batch_normalization_10"](h)
    tags = L["tags"](L["dense_1"](embedding))
    return {"tags": tags, "embedding": embedding, "mean_pool": mean_pool, "max_pool": max_pool}


def load_checkpoint_weights(model, variant: str) -> None:
    """Copy the TF1 checkpoint of ``variant`` into ``model`` (built by ``build_musicnn``)."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix(variant))
    available = reader.get_variable_to_shape_map()
    loaded = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.__class__.__name__ == "BatchNormalization":
            keys = ["gamma", "beta", "moving_mean", "moving_variance"]
        else:
            keys = ["kernel", "bias"]
        values = []
        for key, weight in zip(keys, layer.weights):
            name = f"{layer.name}/{key}"
            if name not in available:
                raise MusicnnError(f"Checkpoint {variant} has no variable {name}.")
            value = reader.get_tensor(name)
            if value.shape != tuple(weight.shape):
                # Mid-end convs: (7, C, 1, 64) 2-D kernels with a singleton input channel.
                value = value.reshape(tuple(weight.shape))
            values.append(value)
            loaded.add(name)
        layer.set_weights(values)
    missing = {k for k in available if k.split("/")[-1] in {"kernel", "bias", "gamma", "beta",
                                                            "moving_mean", "moving_variance"}
               and "Adam" not in k} - loaded
    if missing:
        raise MusicnnError(f"Checkpoint {variant} variables not used by the port: {sorted(missing)}")


def check_patches(mel) -> np.ndarray:
    """``mel`` as float32 (B, 187, 96) patches, or ``MusicnnInputError`` saying what is wrong."""
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim == 2:
        raise MusicnnInputError(
            f"Expected a batch of patches (B, {N_FRAMES}, {N_MELS}); got one patch {mel.shape}. "
            "Use mel[None] for a batch of one.")
    if mel.ndim != 3 or mel.shape[1:] != (N_FRAMES, N_MELS):
        raise MusicnnInputError(
            f"Expected log-mel patches of shape (B, {N_FRAMES}, {N_MELS}); got {mel.shape}.")
    if not np.isfinite(mel).all():
        raise MusicnnInputError("Log-mel patches contain NaN or infinite values.")
    return mel


def empty_outputs() -> dict[str, np.ndarray]:
    """The backbone's outputs for a batch of zero patches."""
    return {"tags": np.zeros((0, N_TAGS), np.float32),
            "embedding": np.zeros((0, EMBEDDING_DIM), np.float32),
            "mean_pool": np.zeros((0, POOL_DIM), np.float32),
            "max_pool": np.zeros((0, POOL_DIM), np.float32)}


class MusicnnBackbone:
    """A pretrained musicnn variant behind one compiled ``tf.function``.

    ``backbone(mel)`` with mel (B,187,96) returns numpy float32 arrays
    ``tags`` (B,50), ``embedding`` (B,200), ``mean_pool`` (B,753), ``max_pool`` (B,753).
    """

    def __init__(self, variant: str = "MSD_musicnn"):
        import tensorflow as tf

        self.variant = check_variant(variant)
        self.tag_names = tag_names(variant)
        self.model = build_musicnn(variant)
        load_checkpoint_weights(self.model, variant)
        model = self.model

        # A fixed signature traces once; model.predict in a loop leaks memory.
        @tf.function(input_signature=[tf.TensorSpec([None, N_FRAMES, N_MELS], tf.float32)])
        def infer(mel):
            return model(mel, training=False)

        self.infer = infer  # the traced function (``fast`` freezes it for LiteRT)

    def __call__(self, mel, streams=None) -> dict[str, np.ndarray]:
        """``streams`` is accepted for the common interface; the port computes every frame."""
        mel = check_patches(mel)
        if mel.shape[0] == 0:
            return empty_outputs()
        out = self.infer(np.ascontiguousarray(mel))
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}

    def __repr__(self) -> str:
        return f"MusicnnBackbone({self.variant!r})"


_cache: dict[str, MusicnnBackbone] = {}
_cache_lock = threading.Lock()


def get_backbone(variant: str = "MSD_musicnn") -> MusicnnBackbone:
    """Process-wide shared backbone per variant, built on first use (takes seconds)."""
    check_variant(variant)
    backbone = _cache.get(variant)
    if backbone is None:
        with _cache_lock:
            backbone = _cache.get(variant)
            if backbone is None:
                backbone = _cache[variant] = MusicnnBackbone(variant)
    return backbone
