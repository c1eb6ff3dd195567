"""A genre model with labels of our choosing, made from the shipped default's head (for label-set tests)."""

from __future__ import annotations

import json
import os
import re

import numpy as np

from server.model.registry import MODELS_DIR

# Eight genres, neither GTZAN's ten nor the shipped default's: some shared, some new, some missing.
OTHER_LABELS = ("ambient", "blues", "electronic", "folk", "jazz", "metal", "rock", "soul")


def relabelled_model(directory, labels=OTHER_LABELS, name: str = "other") -> str:
    """``models/default`` with its output layer rebuilt for ``labels``; returns the directory.

    A label the default has keeps its weights; a new one copies the first column with its bias
    lowered, so it rarely comes out on top (no test depends on which genre wins).
    """
    src = os.path.join(MODELS_DIR, "default")
    with open(os.path.join(src, "model.json"), encoding="utf-8") as f:
        meta = json.load(f)
    old = list(meta["labels"])
    with np.load(os.path.join(src, meta.get("weights", "weights.npz"))) as z:
        weights = {k: z[k] for k in z.files}
    if any(k.endswith("pairs") for k in weights):
        raise ValueError("the default model is an SVM head: relabel its pairs by hand")
    # The last dense layer of each member (``W<i>``/``b<i>``, or ``m<j>.W<i>`` in an ensemble).
    layers: dict[str, int] = {}
    for key in weights:
        found = re.fullmatch(r"(.*?)W(\d+)", key)
        if found:
            layers[found.group(1)] = max(layers.get(found.group(1), 0), int(found.group(2)))
    for prefix, last in layers.items():
        w, b = weights[f"{prefix}W{last}"], weights[f"{prefix}b{last}"]
        cols = [old.index(lab) if lab in old else 0 for lab in labels]
        weights[f"{prefix}W{last}"] = w[:, cols]
        weights[f"{prefix}b{last}"] = b[cols] - np.array([0.0 if lab in old else 3.0 for lab in labels], b.dtype)
    os.makedirs(directory, exist_ok=True)
    np.savez(os.path.join(directory, "weights.npz"), **weights)
    meta.update(name=name, labels=list(labels), weights="weights.npz",
                description=f"test model: the default head relabelled as {', '.join(labels)}")
    with open(os.path.join(directory, "model.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f)
    return str(directory)
