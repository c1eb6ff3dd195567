"""The Keras port converted to faster graphs, cached on disk.

``tflite_model`` (the whole network for LiteRT) and ``split_model`` (the input norm and
the two onnxruntime graphs of ``onnx_graphs``) convert a variant the first time it is
used, with the weights frozen as constants, and keep the result under
``~/.cache/genre-monitor`` keyed by the variant and the package versions; nothing is
downloaded. ``fast`` runs these graphs; ``quantized`` derives its int8 graph from them.

An entry is checked before it is used (``cached``): one that does not load (cut short, a
folder in its place) is rebuilt and written again atomically, and that is logged once.
When the cache folder cannot be written (read-only, a file in its place), each graph is
converted once for this process and kept in one temporary folder of its own, removed at
exit (or, after a crash, by the next start); the log says so once.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import io
import logging
import os
import shutil
import tempfile
import threading
from typing import Callable

import numpy as np

from .frontend import input_norm
from .musicnn import MusicnnBackbone, MusicnnError, check_variant, checkpoint_prefix
from .onnx_graphs import rest_graph, timbral_graph

# Bump when the conversion changes, so stale cached graphs are rebuilt.
CONVERSION_VERSION = 3
OUTPUTS = ("embedding", "max_pool", "mean_pool", "tags")  # the frozen graph's (sorted) output order


log = logging.getLogger(__name__)

FALLBACK_PREFIX = "genre-monitor-cache-"  # + pid: this process's own cache when the shared one is unusable
_fallback: str | None = None
_fallback_lock = threading.Lock()
_build_lock = threading.RLock()  # one conversion at a time: two threads asking for a graph share one


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
    """Write ``data`` atomically at ``path``, or in this process's own folder when the cache
    cannot be written there; return where it went."""
    if _fallback is None:
        try:
            return _write_atomically(path, data)
        except OSError as exc:
            _use_fallback(os.path.dirname(path), exc)
    return _write_atomically(os.path.join(_fallback, os.path.basename(path)), data)


def _write_atomically(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: a concurrent process never reads half a file
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _use_fallback(where: str, exc: OSError) -> None:
    """Switch this process to a temporary cache folder of its own (logged once, removed at exit)."""
    global _fallback
    with _fallback_lock:
        if _fallback is not None:
            return
        _remove_stale_fallbacks()
        _fallback = tempfile.mkdtemp(prefix=f"{FALLBACK_PREFIX}{os.getpid()}-")
        atexit.register(shutil.rmtree, _fallback, True)
    log.warning("model cache %s is unusable (%s): graphs are converted once for this run and kept in %s, "
                "removed at exit", where, exc, _fallback)


def _remove_stale_fallbacks() -> None:
    """Folders of processes that ended without removing theirs (killed)."""
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for name in names:
        pid = name[len(FALLBACK_PREFIX):].split("-", 1)[0] if name.startswith(FALLBACK_PREFIX) else ""
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


def find_cached(path: str) -> str | None:
    """The entry ``path`` names: in the cache, or this process's own folder; None when absent."""
    if _fallback is not None:
        own = os.path.join(_fallback, os.path.basename(path))
        if os.path.exists(own):
            return own
    return path if os.path.exists(path) else None


def cached(paths: tuple[str, ...], build: Callable[[], tuple[bytes, ...]],
           check: Callable[[str], None]) -> tuple[str, ...]:
    """Where the entries ``paths`` are, each passing ``check(path)`` (which raises when it does
    not load); when one is missing or fails, ``build()`` makes them all again and they are
    written atomically (the failure logged)."""
    with _build_lock:
        found = [find_cached(p) for p in paths]
        if all(found):
            try:
                for p in found:
                    check(p)
                return tuple(found)
            except Exception as exc:
                log.warning("model cache: %s does not load (%s: %s); rebuilding it", p, type(exc).__name__,
                            (str(exc).strip().splitlines() or [""])[0][:200])
        return tuple(write_cached(p, data) for p, data in zip(paths, build()))


def check_graph(path: str) -> None:
    """Raise unless ``path`` is a whole graph: ONNX (checked), npz (the input norm) or TFLite (loaded)."""
    if not os.path.isfile(path):
        raise GraphError(f"{path} is not a file")
    if path.endswith(".onnx"):
        import onnx

        graph = onnx.load(path).graph  # a cut file fails to parse, or lacks what its nodes read
        known = {v.name for v in graph.input} | {t.name for t in graph.initializer}
        for node in graph.node:
            missing = [name for name in node.input if name and name not in known]
            if missing:
                raise GraphError(f"{path}: node {node.name or node.op_type} reads {missing[0]!r}, which is missing")
            known.update(node.output)
        if not graph.output or any(o.name not in known for o in graph.output):
            raise GraphError(f"{path}: the graph's outputs are missing")
    elif path.endswith(".npz"):
        with np.load(path) as z:
            norm = np.asarray(z["norm"], np.float64)
        if norm.shape != (2,) or not np.isfinite(norm).all():
            raise GraphError(f"{path}: the input norm is {norm!r}")
    elif path.endswith(".tflite"):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        Interpreter(model_path=path)


def tflite_model(variant: str) -> str:
    """Path of the cached graph of ``variant``, converting it on first use."""
    def build():
        checkpoint_prefix(variant)  # clear error when the weights are missing
        return (convert(variant),)

    return cached((cache_path(variant),), build, check_graph)[0]


def split_model(variant: str) -> tuple[str, str, str]:
    """Paths of the cached ``(input norm .npz, timbral .onnx, rest .onnx)`` of ``variant``."""
    paths = (cache_path(variant, "norm", "npz"), cache_path(variant, "timbral", "onnx"),
             cache_path(variant, "rest", "onnx"))

    def build():
        checkpoint_prefix(variant)
        return convert_split(variant)

    return cached(paths, build, check_graph)
