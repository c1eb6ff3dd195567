"""Faster musicnn backends than the Keras port.

``tflite``: the whole Keras port (``musicnn.MusicnnBackbone``) converted to a
TFLite graph run by LiteRT (XNNPACK). ``fast`` (the default): two onnxruntime
graphs (``onnx_graphs``) — the timbral front-end, run only for frames a live
stream has not computed already (``frontend.TimbralFrontEnd``), and the rest of
the network; onnxruntime's convolutions are ~1.6x faster than XNNPACK's on
these single-channel shapes (``make bench``). The graphs come converted from
the Keras port and cached on disk (``graph_cache``). Outputs match the
Keras port within ~3e-4 of a max-pool of ~70 (4e-6 of the values' scale: sums
run in another order), inside the float32 tolerance the tests hold every backend
and the original network to (``tests/support/tolerance.py``).

``GENRE_MONITOR_BACKEND=keras|tflite|fast`` picks the backend;
``GENRE_MONITOR_THREADS`` sets the threads of the networks (default: all cores).

``fast`` runs in float32 unless ``use_precision("int8")`` switches later backbones to
the int8 timbral front-end (``quantized``); the product's start-up check
(``precision.select``) decides that. Library use (tests, training, ``evaluate``)
never runs the check, so stays float32.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import warnings

import numpy as np

from .frontend import TimbralFrontEnd
from .graph_cache import OUTPUTS, split_model, tflite_model
from .musicnn import MusicnnError, check_variant, check_patches, empty_outputs, tag_names
from .musicnn import get_backbone as keras_backbone
from .quantized import int8_timbral_path

BACKENDS = ("keras", "tflite", "fast")
DEFAULT_BACKEND = "fast"
PRECISIONS = ("float", "int8")  # of the ``fast`` backend's timbral front-end


class BackendError(MusicnnError):
    """Unknown backend, thread count or precision, or stream keys that do not fit; message for the user."""


def backend_name(name: str | None = None) -> str:
    """The backend to use: ``name``, else ``$GENRE_MONITOR_BACKEND``, else the default."""
    name = (name or os.environ.get("GENRE_MONITOR_BACKEND") or DEFAULT_BACKEND).strip().lower()
    if name not in BACKENDS:
        raise BackendError(f"Unknown backend {name!r} (GENRE_MONITOR_BACKEND); choose one of {', '.join(BACKENDS)}.")
    return name


def default_threads() -> int:
    value = os.environ.get("GENRE_MONITOR_THREADS")
    if value:
        try:
            n = int(value)
        except ValueError:
            raise BackendError(f"GENRE_MONITOR_THREADS must be a whole number, not {value!r}.") from None
        if n < 1:
            raise BackendError("GENRE_MONITOR_THREADS must be at least 1.")
        return n
    return max(1, os.cpu_count() or 1)


def limit_blas_threads() -> None:
    """One BLAS thread for the whole process, unless the user set OPENBLAS/OMP threads.

    The networks run in their own thread pool; BLAS only serves the small matmuls of
    the features and the head, where OpenBLAS's spinning threads cost far more than
    they save (a 187x257x96 mel matmul: 0.1 ms on one thread, ~20 ms on two threads
    of a busy 2-core machine).
    """
    if any(os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1, user_api="blas")


def _interpreter(path: str, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the deprecated in-TensorFlow copy of the same interpreter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf

            return tf.lite.Interpreter(model_path=path, num_threads=threads)
    return Interpreter(model_path=path, num_threads=threads)


class TFLiteBackbone:
    """Same interface as ``MusicnnBackbone``: ``backbone(mel (B,187,96))`` → dict of numpy arrays.

    Batches run in chunks of ``max_batch`` windows: the network is compute-bound, so
    bigger batches only cost memory (each window's front-end maps are ~14 MB).
    """

    def __init__(self, variant: str = "MSD_musicnn", threads: int | None = None, max_batch: int = 1):
        self.variant = check_variant(variant)
        self.tag_names = tag_names(variant)
        self.threads = threads or default_threads()
        self.max_batch = max(1, int(max_batch))
        self.path = tflite_model(variant)
        self._it = _interpreter(self.path, self.threads)
        self._input = self._it.get_input_details()[0]["index"]
        # Outputs come back named Identity, Identity_1, ... in the frozen graph's order.
        details = sorted(self._it.get_output_details(), key=lambda d: (len(d["name"]), d["name"]))
        self._outputs = [d["index"] for d in details]
        self._batch = 0
        self._lock = threading.Lock()  # an interpreter runs one call at a time

    def _run(self, mel: np.ndarray) -> list[np.ndarray]:
        if mel.shape[0] != self._batch:
            self._it.resize_tensor_input(self._input, mel.shape)
            self._it.allocate_tensors()
            self._batch = mel.shape[0]
        self._it.set_tensor(self._input, mel)
        self._it.invoke()
        return [self._it.get_tensor(i).copy() for i in self._outputs]

    def __call__(self, mel, streams=None) -> dict[str, np.ndarray]:
        """``streams`` is accepted for the common interface; this backend computes every frame."""
        mel = check_patches(mel)
        if mel.shape[0] == 0:
            return empty_outputs()
        chunks = []
        with self._lock:
            for i in range(0, mel.shape[0], self.max_batch):
                chunks.append(self._run(np.ascontiguousarray(mel[i:i + self.max_batch])))
        return {name: np.concatenate([c[j] for c in chunks]) for j, name in enumerate(OUTPUTS)}

    def __repr__(self) -> str:
        return f"TFLiteBackbone({self.variant!r}, threads={self.threads})"


def _session(path: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: with many sources every core counts.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


class FastBackbone:
    """Same interface as ``MusicnnBackbone`` plus live frame reuse: ``backbone(mel, streams)``.

    The network runs as two onnxruntime graphs (``onnx_graphs``): the timbral
    front-end, only for the frames ``TimbralFrontEnd`` cannot reuse from the
    stream's previous window, then the rest of the network.
    """

    def __init__(self, variant: str = "MSD_musicnn", threads: int | None = None, precision: str = "float"):
        self.variant = check_variant(variant)
        self.tag_names = tag_names(variant)
        self.threads = threads or default_threads()
        if precision not in PRECISIONS:
            raise BackendError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
        self.precision = precision
        norm_path, timbral_path, rest_path = split_model(variant)
        if precision == "int8":
            timbral_path = int8_timbral_path(variant)
        with np.load(norm_path) as z:
            norm = tuple(z["norm"])
        self._timbral = _session(timbral_path, self.threads)
        self._rest = _session(rest_path, self.threads)
        self.frontend = TimbralFrontEnd(norm, lambda x: self._timbral.run(None, {"x": x})[0])
        self._lock = threading.Lock()

    def __call__(self, mel, streams=None) -> dict[str, np.ndarray]:
        """``streams``: None, or per window ``(key, first_frame)`` or None (see ``TimbralFrontEnd``)."""
        mel = check_patches(mel)
        if mel.shape[0] == 0:
            return empty_outputs()
        if streams is not None and len(streams) != mel.shape[0]:
            raise BackendError(f"{len(streams)} stream keys for {mel.shape[0]} windows")
        with self._lock:
            timbral = self.frontend(mel, streams)
            # One window per call: a batch's temporal maps (~3.7 MB a window) would spill out of cache.
            chunks = [self._rest.run(list(OUTPUTS), {"mel": np.ascontiguousarray(mel[i:i + 1]),
                                                      "timbral": timbral[i:i + 1]})
                      for i in range(mel.shape[0])]
        return {name: np.concatenate([c[j] for c in chunks]) for j, name in enumerate(OUTPUTS)}

    def __repr__(self) -> str:
        return f"FastBackbone({self.variant!r}, threads={self.threads}, precision={self.precision!r})"


_cache: dict[tuple, object] = {}
_cache_lock = threading.Lock()
_blas_limited = False
_precision = "float"  # what later ``fast`` backbones run in (``use_precision``)
_precision_here: contextvars.ContextVar[str | None] = contextvars.ContextVar("precision", default=None)


def get_backbone(variant: str = "MSD_musicnn", backend: str | None = None, threads: int | None = None):
    """Process-wide shared backbone of ``variant`` on ``backend`` (env / default when None).

    ``threads`` (default: all cores) gives another instance with its own thread count.
    """
    backend = backend_name(backend)
    global _blas_limited
    if not _blas_limited:
        _blas_limited = True
        limit_blas_threads()
    if backend == "keras":
        return keras_backbone(variant)
    threads = threads or default_threads()
    if backend == "tflite":
        key = (backend, check_variant(variant), threads)
        make = lambda: TFLiteBackbone(variant, threads)
    else:
        precision = current_precision()
        key = (backend, check_variant(variant), threads, precision)
        make = lambda: FastBackbone(variant, threads, precision)
    with _cache_lock:
        backbone = _cache.get(key)
        if backbone is None:
            backbone = _cache[key] = make()
    return backbone


def use_precision(precision: str) -> None:
    """Make every later ``get_backbone`` of the ``fast`` backend run its timbral front-end in ``precision``.

    ``precision.select`` calls it at start-up; tools that compare precisions call it directly.
    """
    global _precision
    if precision not in PRECISIONS:
        raise BackendError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    with _cache_lock:
        if precision != _precision:
            # The other precision's backbones go (a call running in one finishes first): their
            # sessions and frame memories would only hold memory.
            for key in [k for k in _cache if k[0] == "fast" and k[-1] == _precision]:
                del _cache[key]
        _precision = precision


def current_precision() -> str:
    """The precision ``get_backbone`` gives here: this context's ``precision(...)``, else ``use_precision``'s."""
    return _precision_here.get() or _precision


@contextlib.contextmanager
def precision(value: str):
    """Backbones of ``value`` precision for this thread/context only (others keep theirs)."""
    if value not in PRECISIONS:
        raise BackendError(f"Unknown precision {value!r}; choose one of {', '.join(PRECISIONS)}.")
    token = _precision_here.set(value)
    try:
        yield
    finally:
        _precision_here.reset(token)


def frame_counts() -> tuple[int, int]:
    """Timbral frames (computed, reused) so far by every ``fast`` backbone of this process."""
    with _cache_lock:
        frontends = [b.frontend for b in _cache.values() if isinstance(b, FastBackbone)]
    return sum(f.frames_computed for f in frontends), sum(f.frames_reused for f in frontends)
