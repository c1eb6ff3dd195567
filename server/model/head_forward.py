"""The genre heads' forward pass in numpy: logistic regression, MLP, kernel and SVM heads, ensembles."""

from __future__ import annotations

import numpy as np

from .tag_features import assemble

# The first model format (``model_format``) whose forward pass runs each head kind; kinds not named: 1.
KIND_VERSION = {"kernel": 2, "ensemble": 2, "svm": 3}


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def rbf_map(z: np.ndarray, centers: np.ndarray, gamma: float, centers_sq: np.ndarray | None = None) -> np.ndarray:
    """Gaussian kernel values exp(−γ‖z − c‖²) of each row of ``z`` against each centre.

    ``centers_sq`` (‖c‖² per centre) may be passed precomputed: for one live window it
    costs ten times the distances themselves.
    """
    if centers_sq is None:
        centers_sq = (centers * centers).sum(1)
    d2 = (z * z).sum(1, keepdims=True) - 2.0 * z @ centers.T + centers_sq
    return np.exp(-gamma * np.maximum(d2, 0.0))


def _n_layers(weights: dict[str, np.ndarray]) -> int:
    return sum(1 for k in weights if k.startswith("W"))


def pairwise_coupling(r: np.ndarray, pairs: np.ndarray, n_labels: int) -> np.ndarray:
    """Class probabilities (B, n_labels) from pairwise ones, as libsvm couples them.

    ``r[:, p]`` is P(class ``pairs[p, 0]`` | the class is one of ``pairs[p]``). The result
    minimises Σ_t Σ_{j≠t} (r_jt p_t − r_tj p_j)² with Σ p = 1 (Wu, Lin & Weng 2004, method 2),
    solved exactly through its KKT system (Q is singular when the r are consistent).
    Labels in no pair get probability 0.
    """
    classes = np.unique(pairs)
    a, b = np.searchsorted(classes, pairs[:, 0]), np.searchsorted(classes, pairs[:, 1])
    r = np.clip(np.asarray(r, np.float64), 1e-7, 1 - 1e-7)
    k = len(classes)
    R = np.zeros((len(r), k, k))  # R[:, i, j] = P(i | i or j)
    R[:, a, b] = r
    R[:, b, a] = 1.0 - r
    Rt = R.transpose(0, 2, 1)
    kkt = np.zeros((len(r), k + 1, k + 1))  # [[Q, 1], [1ᵀ, 0]] [p; λ] = [0; 1]
    kkt[:, :k, :k] = -Rt * R
    kkt[:, np.arange(k), np.arange(k)] = (Rt ** 2).sum(axis=2)
    kkt[:, :k, k] = kkt[:, k, :k] = 1.0
    rhs = np.zeros((len(r), k + 1, 1))
    rhs[:, k] = 1.0
    p = np.maximum(np.linalg.solve(kkt, rhs)[:, :k, 0], 0.0)
    out = np.zeros((len(r), n_labels), np.float32)
    out[:, classes] = p / p.sum(axis=1, keepdims=True)
    return out


def dense_forward(x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """Standardise, map onto kernel centres (kernel and SVM heads), dense layers (ReLU between),
    then softmax, or for an SVM's one-vs-one decisions Platt sigmoids and pairwise coupling."""
    h = (x - weights["mean"]) / weights["scale"]
    if "centers" in weights:
        h = rbf_map(h, weights["centers"], float(weights["gamma"]), weights.get("centers_sq"))
    n_layers = _n_layers(weights)
    for i in range(n_layers):
        h = h @ weights[f"W{i}"] + weights[f"b{i}"]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
    if "pairs" in weights:
        r = 1.0 / (1.0 + np.exp(-(weights["platt_a"] * h + weights["platt_b"])))
        return pairwise_coupling(r, weights["pairs"].astype(int), int(weights["n_labels"]))
    return softmax(h)


def n_outputs(weights: dict[str, np.ndarray]) -> int:
    """How many labels a member head scores."""
    if "pairs" in weights:
        return int(weights["n_labels"])
    return weights[f"b{_n_layers(weights) - 1}"].shape[0]


def member_weights(weights: dict[str, np.ndarray], n_members: int) -> list[dict[str, np.ndarray]]:
    """Split an ensemble's ``m<j>.<name>`` arrays into one weight dict per member, ready to run
    (with the kernel centres' squared norms, which ``rbf_map`` would otherwise redo per call)."""
    if n_members == 1 and not any(k.startswith("m0.") for k in weights):
        members = [dict(weights)]
    else:
        members = [{k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith(f"m{j}.")}
                   for j in range(n_members)]
    for w in members:
        if "centers" in w:
            w["centers_sq"] = (w["centers"] * w["centers"]).sum(1)
    return members


def head_members(meta: dict) -> list[tuple[list[str], dict]]:
    """Each member head's ``(feature keys, spec)`` (one member unless ``head.kind`` is ``ensemble``)."""
    head = meta.get("head", {})
    if head.get("kind") == "ensemble":
        return [(list(m["keys"]), m["spec"]) for m in head["members"]]
    return [(list(meta["features"]["keys"]), head)]


def ensemble_forward(outputs: dict[str, np.ndarray], members: list[tuple[list[str], dict]]) -> np.ndarray:
    """Mean of the member heads' probabilities, each on its own backbone outputs."""
    probs = [dense_forward(assemble(outputs, keys), w) for keys, w in members]
    return probs[0] if len(probs) == 1 else np.mean(probs, axis=0)
