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


def peak_flops(n: int = 2048, repeats: int = 5) -> dict:
    """Measured float32 matmul rate (numpy/BLAS, all threads): the best of ``repeats``."""
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
    best = min(times)
    return {"n": n, "gflops_best": round(2 * n ** 3 / best / 1e9, 1),
            "gflops_median": round(2 * n ** 3 / float(np.median(times)) / 1e9, 1)}
