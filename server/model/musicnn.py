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

VARIANTS = ("MSD_musicnn", "MTT_musicnn")
N_FRAMES = 187
N_MELS = 96
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


def _check_variant(variant: str) -> str:
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
    folder = os.path.join(package_dir(), _check_variant(variant))
    if not os.path.exists(os.path.join(folder, ".index")):
        raise MusicnnNotInstalled(
            f"musicnn weights for {variant} are missing in {folder}. Reinstall with: {INSTALL_HINT}")
    # The shipped `checkpoint` files name the authors' own paths, so pass the prefix itself.
    return folder + "/"


def tag_names(variant: str) -> list[str]:
    """The 50 tag names of a variant, in output order."""
    _check_variant(variant)
    package_dir()  # clear error if missing
    from musicnn import configuration

    return list(configuration.MSD_LABELS if variant.startswith("MSD") else configuration.MTT_LABELS)


# --- network ----------------------------------------------------------------

def build_musicnn(variant: str):
    """Keras 3 functional model of ``variant`` (weights NOT loaded; see ``load_checkpoint_weights``).

    Outputs a dict: ``tags`` (B,50) sigmoid, ``embedding`` (B,200) penultimate layer,
    ``mean_pool`` / ``max_pool`` (B,753) temporal pools of the mid-end features.
    """
    _check_variant(variant)
    import keras
    from keras import layers

    def bn(name):
        return layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, momentum=0.99, name=name)

    x_in = keras.Input(shape=(N_FRAMES, N_MELS), dtype="float32", name="mel")
    x = layers.Reshape((N_FRAMES, N_MELS, 1), name="expand_input")(x_in)
    x = bn("batch_normalization")(x)

    # Front-end. Timbral: (7 x 38|67) filters over time-padded input, max over frequency.
    # Temporal: (128|64|32 x 1) filters, 'same' padding, max over frequency.
    x_pad = layers.ZeroPadding2D(((3, 3), (0, 0)), name="input_pad_7")(x)
    front = []
    for i, (width, conv, norm) in enumerate(
            [(int(0.4 * N_MELS), "conv2d", "batch_normalization_1"),
             (int(0.7 * N_MELS), "conv2d_1", "batch_normalization_2")]):
        h = layers.Conv2D(204, (7, width), padding="valid", activation="relu", name=conv)(x_pad)
        h = bn(norm)(h)
        h = layers.MaxPooling2D((1, N_MELS - width + 1), name=f"timbral_pool_{i}")(h)
        front.append(layers.Reshape((N_FRAMES, 204), name=f"timbral_squeeze_{i}")(h))
    for i, (length, conv, norm) in enumerate(
            [(128, "conv2d_2", "batch_normalization_3"),
             (64, "conv2d_3", "batch_normalization_4"),
             (32, "conv2d_4", "batch_normalization_5")]):
        h = layers.Conv2D(51, (length, 1), padding="same", activation="relu", name=conv)(x)
        h = bn(norm)(h)
        h = layers.MaxPooling2D((1, N_MELS), name=f"temporal_pool_{i}")(h)
        front.append(layers.Reshape((N_FRAMES, 51), name=f"temporal_squeeze_{i}")(h))
    frontend = layers.Concatenate(axis=-1, name="frontend")(front)  # (B,187,561)

    # Mid-end. The original's (7 x all-channels) 2-D convs on padded maps are 1-D convs.
    def conv1d(h, conv, norm, tag):
        h = layers.ZeroPadding1D(3, name=f"{tag}_pad")(h)
        h = layers.Conv1D(64, 7, padding="valid", activation="relu", name=conv)(h)
        return bn(norm)(h)

    cnn1 = conv1d(frontend, "conv2d_5", "batch_normalization_6", "cnn1")
    cnn2 = layers.Add(name="res_conv2")([conv1d(cnn1, "conv2d_6", "batch_normalization_7", "cnn2"), cnn1])
    cnn3 = layers.Add(name="res_conv3")([conv1d(cnn2, "conv2d_7", "batch_normalization_8", "cnn3"), cnn2])
    midend = layers.Concatenate(axis=-1, name="midend")([frontend, cnn1, cnn2, cnn3])  # (B,187,753)

    # Back-end. The original concatenates (B,753,1) max and mean maps on a new last axis
    # and flattens, so the dense input interleaves them: [max0, mean0, max1, mean1, ...].
    max_pool = layers.GlobalMaxPooling1D(name="max_pool")(midend)
    mean_pool = layers.GlobalAveragePooling1D(name="mean_pool")(midend)
    pooled = layers.Concatenate(axis=-1, name="tmp_pool")(
        [layers.Reshape((POOL_DIM, 1), name="max_pool_expand")(max_pool),
         layers.Reshape((POOL_DIM, 1), name="mean_pool_expand")(mean_pool)])
    h = layers.Flatten(name="flat_pool")(pooled)
    h = bn("batch_normalization_9")(h)
    h = layers.Dense(EMBEDDING_DIM, activation="relu", name="dense")(h)
    embedding = bn("batch_normalization_10")(h)
    logits = layers.Dense(N_TAGS, name="dense_1")(embedding)
    tags = layers.Activation("sigmoid", name="tags")(logits)

    outputs = {"tags": tags, "embedding": embedding, "mean_pool": mean_pool, "max_pool": max_pool}
    return keras.Model(x_in, outputs, name=variant)


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

        self.variant = _check_variant(variant)
        self.tag_names = tag_names(variant)
        self.model = build_musicnn(variant)
        load_checkpoint_weights(self.model, variant)
        model = self.model

        # A fixed signature traces once; model.predict in a loop leaks memory.
        @tf.function(input_signature=[tf.TensorSpec([None, N_FRAMES, N_MELS], tf.float32)])
        def infer(mel):
            return model(mel, training=False)

        self._infer = infer

    def __call__(self, mel) -> dict[str, np.ndarray]:
        mel = check_patches(mel)
        if mel.shape[0] == 0:
            return empty_outputs()
        out = self._infer(np.ascontiguousarray(mel))
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}

    def __repr__(self) -> str:
        return f"MusicnnBackbone({self.variant!r})"


_cache: dict[str, MusicnnBackbone] = {}
_cache_lock = threading.Lock()


def get_backbone(variant: str = "MSD_musicnn") -> MusicnnBackbone:
    """Process-wide shared backbone per variant, built on first use (takes seconds)."""
    _check_variant(variant)
    backbone = _cache.get(variant)
    if backbone is None:
        with _cache_lock:
            backbone = _cache.get(variant)
            if backbone is None:
                backbone = _cache[variant] = MusicnnBackbone(variant)
    return backbone
