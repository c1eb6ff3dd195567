"""Access to the musicnn golden data (tests/golden/musicnn_golden.npz, made by scripts/make_golden.py)."""

from pathlib import Path

import numpy as np

GOLDEN_PATH = Path(__file__).resolve().parents[1] / "golden" / "musicnn_golden.npz"


def load_golden() -> dict:
    """Inputs (N,187,96) log-mel patches of synthetic audio, their names, and per-variant
    reference outputs of the original TF1 musicnn under keys ``'<variant>/<output>'``."""
    with np.load(GOLDEN_PATH, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
