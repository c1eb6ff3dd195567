"""The Keras port converted to faster graphs, cached on disk.

``tflite_model`` (the whole network for LiteRT) and ``split_model`` (the input norm and
the two onnxruntime graphs of ``onnx_graphs``) convert a variant the first time it is
used, with the weights frozen as constants, and keep the result under
``~/.cache/genre-monitor`` keyed by the variant and the package versions; nothing is
downloaded. ``fast`` runs these graphs; ``quantized`` derives its int8 graph from them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import tempfile

import numpy as np

from .frontend import input_norm
from .musicnn import MusicnnBackbone, MusicnnError, check_variant, checkpoint_prefix
from .onnx_graphs import rest_graph, timbral_graph

# Bump when the conversion changes, so stale cached graphs are rebuilt.
CONVERSION_VERSION = 3
OUTPUTS = ("embedding", "max_pool", "mean_pool", "tags")  # the frozen graph's (sorted) output order


class GraphError(MusicnnError):
    """A converted graph is not what the backends expect."""


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "genre-monitor")


def _version(*dists: str) -> str:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "none"


def cache_path(variant: str, part: str = "tflite", ext: str = "tflite") -> str:
    """Where a converted ``part`` of ``variant`` is cached (the name changes with any version)."""
    check_variant(variant)
    key = "|".join([variant, str(CONVERSION_VERSION), _version("musicnn"), _version("tensorflow", "tensorflow-cpu"),
                    _version("keras")])
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return os.path.join(cache_dir(), f"{variant}-{part}-{digest}.{ext}")


def _freeze(fn):
    """TFLite flatbuffer of a ``tf.function`` with the variables it reads frozen in as constants."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Frozen constants: a graph that reads resource variables yields NaN under XNNPACK.
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    names = [t.name.split(":")[0] for t in frozen.outputs]
    if len(names) != len(OUTPUTS):
        raise GraphError(f"Unexpected outputs of a converted graph: {names}")
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


def convert(variant: str) -> bytes:
    """TFLite flatbuffer of the Keras port of ``variant`` with its weights frozen in."""
    return _freeze(MusicnnBackbone(variant).infer)


def convert_split(variant: str) -> tuple[bytes, bytes, bytes]:
    """``(npz of the input norm, ONNX timbral graph, ONNX rest-of-network graph)`` of ``variant``."""
    model = MusicnnBackbone(variant).model
    buf = io.BytesIO()
    np.savez(buf, norm=np.array(input_norm(model), np.float64))
    return buf.getvalue(), timbral_graph(model), rest_graph(model)


def write_cached(path: str, data: bytes) -> str:
    """Write ``data`` atomically at ``path`` (or in a temp dir when the cache is read-only)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".part")
    except OSError:  # read-only home: keep this process's copy in the temp dir
        path = os.path.join(tempfile.mkdtemp(prefix="genre-monitor-"), os.path.basename(path))
        fd, tmp = os.open(path + ".part", os.O_WRONLY | os.O_CREAT, 0o644), path + ".part"
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # atomic: a concurrent process never reads half a file
    return path


def tflite_model(variant: str) -> str:
    """Path of the cached graph of ``variant``, converting it on first use."""
    path = cache_path(variant)
    if not os.path.exists(path):
        checkpoint_prefix(variant)  # clear error when the weights are missing
        path = write_cached(path, convert(variant))
    return path


def split_model(variant: str) -> tuple[str, str, str]:
    """Paths of the cached ``(input norm .npz, timbral .onnx, rest .onnx)`` of ``variant``."""
    paths = (cache_path(variant, "norm", "npz"), cache_path(variant, "timbral", "onnx"),
             cache_path(variant, "rest", "onnx"))
    if not all(os.path.exists(p) for p in paths):
        checkpoint_prefix(variant)
        paths = tuple(write_cached(p, data) for p, data in zip(paths, convert_split(variant)))
    return paths
