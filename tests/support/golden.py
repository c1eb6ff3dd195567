"""Access to the musicnn golden data (tests/golden/musicnn_golden.npz, made by scripts/tools/make_golden.py)."""

from pathlib import Path

import numpy as np

GOLDEN_PATH = Path(__file__).resolve().parents[1] / "golden" / "musicnn_golden.npz"


def load_golden() -> dict:
    """Inputs (N,187,96) log-mel patches of synthetic audio, their names, and per-variant
    reference outputs of the original TF1 musicnn under keys ``'<variant>/<output>'``."""
    with np.load(GOLDEN_PATH, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


OUTPUTS = ("tags", "embedding", "mean_pool", "max_pool")


def assert_matches_golden(outputs: dict, golden: dict, variant: str, keys=OUTPUTS) -> dict:
    """Backbone ``outputs`` of the golden inputs match the original network's within float32
    error (``tests.support.tolerance``), and rank the same top-5 tags; returns the differences."""
    from tests.support.tolerance import assert_f32_close, assert_same_ranking, output_tol

    diffs = {}
    for key in keys:
        want = golden[f"{variant}/{key}"]
        assert outputs[key].dtype == np.float32, f"{variant} {key}: dtype {outputs[key].dtype}"
        diffs[key] = assert_f32_close(outputs[key], want, output_tol(key, want), f"{variant} {key}")
        if key == "tags":
            assert_same_ranking(outputs[key], want, 5, output_tol(key, want), f"{variant} top tags")
    return diffs
