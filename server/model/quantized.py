"""The int8 timbral front-end, and the start-up check that decides whether the product uses it.

The timbral convolutions are ~80 % of a window's work and already run near the
float32 peak, so only fewer bits make them faster: onnxruntime's static int8
quantisation (uint8 activations, per-channel int8 weights; ``QLinearConv``)
calibrated on the timbral inputs of real music (the freely licensed demo tracks
in ``media/demo``). Weights use 7 bits (``reduce_range``): on CPUs without VNNI
the uint8 x int8 pair sums of AVX2 saturate 16 bits with 8-bit weights, so with
7 bits the integer results are the same on every x86 CPU. Rounding shifts each
output channel a little in one direction, which the heads' means over time add
up (the content head then called music noise), so each channel's mean error on
the calibration windows is added back. The rest of the network stays float: its
int8 temporal convolutions (one input channel, 128/64/32 taps) are no faster than float ones.

Integer convolutions with fixed scales make each frame's maps depend only on its
own input rows, so live frame reuse (``frontend.TimbralFrontEnd``) works as for
float. The graph is cached on disk next to the float ones (``graph_cache``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from .frontend import CONTEXT
from .graph_cache import cache_path, cached, check_graph, split_model

# Bump when the quantisation recipe changes, so stale cached graphs are rebuilt.
QUANT_VERSION = 2
DEMO_DIR = Path(__file__).resolve().parents[2] / "media" / "demo"
# Demo tracks (sorted order) whose windows calibrate the activation ranges; the others check.
CALIBRATION_TRACKS = (0, 2)
CALIBRATION_HOP_S = 2.0
CHECK_HOP_S = 1.5


class QuantizationUnavailable(Exception):
    """The int8 path cannot be built here (library or demo audio missing); the message says why."""


def demo_tracks() -> list[Path]:
    tracks = sorted(DEMO_DIR.glob("*.ogg"))
    if len(tracks) <= max(CALIBRATION_TRACKS):
        raise QuantizationUnavailable(f"the demo tracks for calibration are missing ({DEMO_DIR})")
    return tracks


def track_windows(paths, hop_s: float) -> np.ndarray:
    """Log-mel windows ``(n, 187, 96)`` of the audio files ``paths``, one every ``hop_s`` seconds."""
    from server.audio.decode import decode
    from server.audio.resample import resample
    from server.config import MODEL_SR
    from server.stream.features import window_mels

    out = []
    for path in paths:
        y, sr = decode(str(path))
        out.append(window_mels(resample(y, sr, MODEL_SR), hop_s))
    return np.concatenate(out).astype(np.float32)


def calibration_windows() -> np.ndarray:
    tracks = demo_tracks()
    return track_windows([tracks[i] for i in CALIBRATION_TRACKS], CALIBRATION_HOP_S)


def check_windows() -> np.ndarray:
    """Windows of the demo tracks not used for calibration."""
    tracks = demo_tracks()
    return track_windows([t for i, t in enumerate(tracks) if i not in CALIBRATION_TRACKS], CHECK_HOP_S)


# The instruction sets whose presence changes which int8 kernels onnxruntime runs.
_INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_flags(path: str = "/proc/cpuinfo") -> list[str]:
    """Which of the CPU features that select int8 kernels this machine has (empty when unreadable)."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    have = set(value.split())
                    return [flag for flag in _INT8_FLAGS if flag in have]
    except OSError:
        pass
    return []


def ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def int8_timbral_path(variant: str) -> str:
    """Path of the cached int8 timbral graph of ``variant``, quantising it on first use."""
    if importlib.util.find_spec("onnxruntime.quantization") is None:
        raise QuantizationUnavailable("onnxruntime.quantization is missing")
    path = cache_path(variant, f"timbral-int8-q{QUANT_VERSION}-ort{ort_version()}", "onnx")

    def build():
        norm_path, timbral_path, _ = split_model(variant)
        return (quantize_timbral(timbral_path, norm_path, calibration_windows()),)

    return cached((path,), build, check_graph)[0]


def quantize_timbral(timbral_path: str, norm_path: str, mel: np.ndarray) -> bytes:
    """int8 ONNX of the float timbral graph at ``timbral_path``, calibrated on log-mel windows ``mel``."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    with np.load(norm_path) as z:
        scale, shift = (np.float32(v) for v in z["norm"])
    # The graph's input: the input batch norm applied, then zeros for the context (as the front-end).
    feeds = [{"x": np.pad(m * scale + shift, ((CONTEXT, CONTEXT), (0, 0)))[None].astype(np.float32)} for m in mel]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    model = onnx.load(timbral_path)
    for i, node in enumerate(model.graph.node):  # the quantiser needs named nodes
        node.name = node.name or f"n{i}"
    with tempfile.TemporaryDirectory(prefix="gm-int8-") as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "int8.onnx")
        onnx.save(model, src)
        quantize_static(src, dst, Reader(), quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                        op_types_to_quantize=["Conv"])
        quantized = onnx.load(dst)
    return _bias_corrected(model, quantized, feeds).SerializeToString()


def _bias_corrected(float_model, int8_model, feeds):
    """``int8_model`` with each output channel shifted by its mean error on ``feeds``.

    Rounding the convolutions' outputs to 8 bits and taking their max over frequency moves
    every map a little in one direction; the means over time that the heads read add those
    shifts up. A constant per channel keeps each frame's maps a function of its own rows.
    """
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    def outputs(model):
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.concatenate([sess.run(None, f)[0][0] for f in feeds])  # (frames, 408)

    shift = (outputs(float_model) - outputs(int8_model)).mean(axis=0).astype(np.float32)  # (408,)
    graph = int8_model.graph
    out = graph.output[0]
    raw = out.name + "_uncorrected"
    for node in graph.node:
        node.output[:] = [raw if o == out.name else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(shift.reshape(1, 1, -1), "bias_correction"))
    graph.node.append(helper.make_node("Add", [raw, "bias_correction"], [out.name], name="bias_correction"))
    return int8_model

