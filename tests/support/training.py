"""Tiny synthetic folder-per-genre collections and a trained model on them, for training tests."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np
import soundfile as sf

GENRES = ("chirp", "clicks", "drone")


def _track(genre: str, seed: int, sr: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    if genre == "drone":  # low sustained chord with vibrato
        f = rng.uniform(90, 140)
        y = sum(np.sin(2 * np.pi * f * k * t + 0.5 * np.sin(2 * np.pi * 5 * t)) / k for k in (1, 1.5, 2))
    elif genre == "clicks":  # noise bursts on a beat, like drums alone
        y = np.zeros_like(t)
        period = int(sr * rng.uniform(0.2, 0.3))
        for start in range(0, len(t) - 2000, period):
            n = min(int(0.06 * sr), len(t) - start)
            y[start:start + n] += rng.standard_normal(n) * np.exp(-np.arange(n) / (0.01 * sr))
    else:  # high-pitched rising sweeps
        rate = rng.uniform(1.5, 2.5)
        f = 1200 + 2500 * ((t * rate) % 1.0)
        y = np.sin(2 * np.pi * np.cumsum(f) / sr)
    y = y / (np.max(np.abs(y)) + 1e-9) * rng.uniform(0.3, 0.8)
    return y.astype(np.float32)


def make_collection(root: str, genres=GENRES, per_genre: int = 3, seconds: float = 6.0, sr: int = 22050,
                    seed: int = 0, fmt: str = "wav") -> str:
    """``root/<genre>/<genre>.<k>.<fmt>`` synthetic tracks; returns root."""
    for g, genre in enumerate(genres):
        os.makedirs(os.path.join(root, genre), exist_ok=True)
        for k in range(per_genre):
            y = _track(genre, seed * 1000 + g * 100 + k, sr, seconds)
            sf.write(os.path.join(root, genre, f"{genre}.{k:05d}.{fmt}"), y, sr)
    return root


def _tmpdir() -> str:
    path = tempfile.mkdtemp(prefix="gm-train-test-")
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def trained_model() -> tuple[str, str, str]:
    """``(model_dir, train_data_dir, cache_dir)``: a head trained once per test session via the CLI."""
    from server.cli import build_parser

    root = _tmpdir()
    data = make_collection(os.path.join(root, "data"))
    out, cache = os.path.join(root, "model"), os.path.join(root, "cache")
    args = build_parser().parse_args(["train", data, "--out", out, "--quick", "--augment", "1", "--folds", "3",
                                      "--repeats", "1", "--hop", "1", "--cache-dir", cache, "--quiet"])
    assert args.func(args) == 0
    return out, data, cache
