"""The physical limit: the model's floating-point work per window and the machine's peak rate."""

from __future__ import annotations

import time

import numpy as np


def network_flops(variant: str = "MSD_musicnn") -> dict:
    """FLOPs of one window through one backbone, from its layer shapes (multiply-add = 2).

    Convolutions and dense layers are counted exactly; batch norm, pooling and
    activations add one operation per element (they are < 1 % of the total).
    """
    from server.model.musicnn import build_musicnn

    model = build_musicnn(variant)
    conv = dense = other = timbral = 0
    for layer in model.layers:
        kind = type(layer).__name__
        out = layer.output.shape
        n_out = int(np.prod([d for d in out[1:]]))
        if kind in ("Conv1D", "Conv2D"):
            k = int(np.prod(layer.kernel.shape[:-1]))  # taps × input channels
            conv += 2 * n_out * k
            if layer.name in ("conv2d", "conv2d_1"):  # the timbral front-end, reusable between live windows
                timbral += 2 * n_out * k
        elif kind == "Dense":
            dense += 2 * int(layer.kernel.shape[0]) * n_out
        elif kind in ("BatchNormalization", "MaxPooling2D", "GlobalMaxPooling1D", "GlobalAveragePooling1D",
                      "Activation", "Add"):
            inp = layer.input.shape if not isinstance(layer.input, list) else layer.input[0].shape
            other += int(np.prod([d for d in inp[1:]]))
    return {"conv": conv, "dense": dense, "other": other, "timbral": timbral, "total": conv + dense + other}


def model_flops(backbones) -> dict:
    counts = {b: network_flops(b) for b in backbones}
    return {"per_backbone": {b: c["total"] for b, c in counts.items()},
            "per_window": sum(c["total"] for c in counts.values()),
            "timbral_per_window": sum(c["timbral"] for c in counts.values())}


# /proc/cpuinfo flags of the vector instruction sets the kernels may use, in the order printed.
ISA_FLAGS = (("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512F"), ("avx512_vnni", "AVX-512 VNNI"),
             ("avx_vnni", "AVX-VNNI"), ("avx512_bf16", "AVX-512 BF16"), ("amx_tile", "AMX"),
             ("amx_bf16", "AMX-BF16"), ("amx_int8", "AMX-INT8"))

# The numpy measurement runs in a child without the OpenBLAS overrides: an OPENBLAS_CORETYPE
# (e.g. Haswell on an AVX-512 machine) caps the kernels below what the CPU can do.
_NUMPY_CHILD = """
import json, os, sys, time
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.random((n, n), dtype=np.float32)
b = rng.random((n, n), dtype=np.float32)
times = []
with threadpool_limits(os.cpu_count(), user_api="blas"):
    a @ b
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
core = [i.get("architecture") for i in threadpool_info() if i.get("user_api") == "blas"]
print(json.dumps({"times": times, "blas_core": core[0] if core else None}))
"""


def cpu_isa(path: str = "/proc/cpuinfo") -> dict:
    """The CPU's model name and which of ``ISA_FLAGS`` its flags list (empty when unreadable)."""
    flags, model = set(), None
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "flags" and not flags:
                    flags = set(value.split())
                elif key == "model name" and model is None:
                    model = value.strip()
    except OSError:
        pass
    found = [label for flag, label in ISA_FLAGS if flag in flags]
    return {"model": model, "flags": [flag for flag, _ in ISA_FLAGS if flag in flags],
            "summary": ", ".join(found) if found else "unknown"}


def _rate(flop: float, times: list[float]) -> dict:
    return {"gflops_best": round(flop / min(times) / 1e9, 1),
            "gflops_median": round(flop / float(np.median(times)) / 1e9, 1)}


def numpy_peak(n: int = 2048, repeats: int = 5) -> dict:
    """float32 matmul rate of numpy/BLAS on all threads, in this process (its environment as is)."""
    import os

    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    times = []
    with threadpool_limits(os.cpu_count(), user_api="blas"):  # the app itself limits BLAS to one thread
        a @ b
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    return {"n": n, **_rate(2 * n ** 3, times)}


def numpy_peak_clean(n: int = 2048, repeats: int = 5, timeout: float = 120.0) -> dict:
    """Like ``numpy_peak`` but in a child process with every ``OPENBLAS_*`` variable removed, so
    OpenBLAS picks its kernels for the CPU it finds; also the core type it picked."""
    import json
    import os
    import subprocess
    import sys

    removed = sorted(k for k in os.environ if k.startswith("OPENBLAS_"))
    env = {k: v for k, v in os.environ.items() if k not in removed}
    out = subprocess.run([sys.executable, "-c", _NUMPY_CHILD, str(n), str(repeats)], env=env, timeout=timeout,
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return {"n": n, **_rate(2 * n ** 3, data["times"]), "blas_core": data["blas_core"], "removed_env": removed}


def _ort_session(model_bytes: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def onnx_peak(repeats: int = 5, threads: int | None = None) -> dict:
    """float32 rates of onnxruntime's own kernels (MLAS), on all threads: the model's largest
    convolution at its shape (one window's timbral front-end, 204 filters of 7 x 38 over 193 x 96)
    and a 1024 x 1024 MatMul."""
    import os

    from onnx import TensorProto, helper, numpy_helper

    threads = threads or os.cpu_count() or 1
    rng = np.random.default_rng(0)
    out = {"threads": threads}

    def graph(op, inputs, w, **attrs):
        node = helper.make_node(op, ["x", "w"], ["y"], **attrs)
        g = helper.make_graph([node], "peak", [helper.make_tensor_value_info("x", TensorProto.FLOAT, inputs)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()

    def timed(model, x, flop):
        sess = _ort_session(model, threads)
        sess.run(None, {"x": x})
        times = []
        for _ in range(max(repeats, 20)):  # short runs: more of them, so one gets a quiet moment
            t0 = time.perf_counter()
            sess.run(None, {"x": x})
            times.append(time.perf_counter() - t0)
        return _rate(flop, times)

    c, kh, kw, h, w = 204, 7, 38, 193, 96
    x = rng.standard_normal((1, 1, h, w)).astype(np.float32)
    k = rng.standard_normal((c, 1, kh, kw)).astype(np.float32)
    out["conv"] = timed(graph("Conv", list(x.shape), k), x, 2 * c * (h - kh + 1) * (w - kw + 1) * kh * kw)
    n = 1024
    a = rng.random((n, n), dtype=np.float32)
    out["matmul"] = {"n": n, **timed(graph("MatMul", [n, n], rng.random((n, n), dtype=np.float32)), a, 2 * n ** 3)}
    return out


def onnx_int8_peak(repeats: int = 5, threads: int | None = None) -> dict:
    """int8 rate (multiply-add = 2 operations) of onnxruntime's ``QLinearConv``, the kernel of the
    int8 timbral front-end (``server.model.quantized``), at that front-end's largest shape:
    uint8 input, per-channel int8 weights, 204 filters of 7 x 38 over 193 x 96."""
    import os

    from onnx import TensorProto, helper, numpy_helper

    threads = threads or os.cpu_count() or 1
    rng = np.random.default_rng(0)
    c, kh, kw, h, w = 204, 7, 38, 193, 96
    consts = {"x_scale": np.float32(0.02), "x_zp": np.uint8(128),
              "w": rng.integers(-63, 64, (c, 1, kh, kw)).astype(np.int8),
              "w_scale": np.full(c, 0.01, np.float32), "w_zp": np.zeros(c, np.int8),
              "y_scale": np.float32(0.05), "y_zp": np.uint8(0)}
    node = helper.make_node("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp"], ["y"])
    g = helper.make_graph([node], "peak_int8", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, h, w])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()])
    sess = _ort_session(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString(), threads)
    x = rng.integers(0, 256, (1, 1, h, w)).astype(np.uint8)
    sess.run(None, {"x": x})
    times = []
    for _ in range(max(repeats, 20)):
        t0 = time.perf_counter()
        sess.run(None, {"x": x})
        times.append(time.perf_counter() - t0)
    return {"threads": threads, "conv": _rate(2 * c * (h - kh + 1) * (w - kw + 1) * kh * kw, times)}


def peak_flops(n: int = 2048, repeats: int = 5) -> dict:
    """The machine's float32 peak as measured: the best of numpy's matmul (as configured, and in
    a child with the OpenBLAS overrides removed) and onnxruntime's conv and MatMul kernels; with
    the CPU's instruction sets. ``gflops_best`` is that best; ``source`` names the kernel."""
    candidates, errors = {}, {}
    for name, fn in (("numpy", lambda: numpy_peak(n, repeats)), ("numpy_clean", lambda: numpy_peak_clean(n, repeats)),
                     ("onnxruntime", lambda: onnx_peak(repeats))):
        try:
            candidates[name] = fn()
        except Exception as exc:  # one kernel that cannot run must not lose the others
            errors[name] = f"{type(exc).__name__}: {exc}"
    rates = {}
    for name, r in candidates.items():
        if name == "onnxruntime":
            rates.update({f"onnxruntime {k}": v["gflops_best"] for k, v in r.items() if isinstance(v, dict)})
        else:
            rates[f"{name} matmul"] = r["gflops_best"]
    source = max(rates, key=rates.get) if rates else None
    try:
        int8 = onnx_int8_peak(repeats)
    except Exception as exc:
        int8, errors["onnxruntime_int8"] = None, f"{type(exc).__name__}: {exc}"
    return {"n": n, "gflops_best": rates.get(source), "source": source, "rates": rates, **candidates,
            "int8": int8, "int8_gops_best": int8["conv"]["gflops_best"] if int8 else None,
            "isa": cpu_isa(), "errors": errors}


def floor_ms(timbral_flops: float, rest_flops: float, peak: dict, precision: str = "float") -> float | None:
    """The least time the work can take at the measured peaks: the timbral front-end at the int8
    rate when it runs in int8, everything else at the float32 rate."""
    fp32, int8 = peak.get("gflops_best"), peak.get("int8_gops_best")
    timbral_rate = int8 if precision == "int8" else fp32
    if not (fp32 and timbral_rate):
        return None
    return 1e3 * (timbral_flops / (timbral_rate * 1e9) + rest_flops / (fp32 * 1e9))
