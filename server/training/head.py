"""Genre heads on backbone outputs: design matrices, fitting, grouped cross-validation.

A head spec is a plain dict: ``{"kind": "logreg", "C": 1.0}`` (``"balanced": true``
weights windows so that every genre counts the same, whatever its share of the data),
``{"kind": "kernel", "centers": 1000, "C": 1.0}`` (logistic regression on Gaussian-kernel
values against ``centers`` training windows: a Nyström approximation of a kernel machine),
``{"kind": "svm", "C": 1.0}`` (an RBF SVM with calibrated probabilities),
or ``{"kind": "mlp", "hidden": 256, "alpha": 1e-3}``. A candidate is a list of members,
``(feature keys, spec)``; more than one member is an ensemble whose probabilities are
averaged. Fitted heads are exported as plain weight arrays and always scored through
``head_forward.ensemble_forward``, the same code the live model runs.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..model.head_forward import ensemble_forward

from ..model.tag_features import assemble

# Feature sets compared by cross-validation: names → backbone output keys.
FEATURE_SETS = {
    "msd-emb": ["MSD_musicnn/embedding"],
    "mtt-emb": ["MTT_musicnn/embedding"],
    "emb": ["MSD_musicnn/embedding", "MTT_musicnn/embedding"],
    "emb+tags": ["MSD_musicnn/embedding", "MTT_musicnn/embedding", "MSD_musicnn/tags", "MTT_musicnn/tags"],
    "emb+pools": ["MSD_musicnn/embedding", "MTT_musicnn/embedding",
                  "MSD_musicnn/mean_pool", "MTT_musicnn/mean_pool",
                  "MSD_musicnn/max_pool", "MTT_musicnn/max_pool"],
    "mean-pools": ["MSD_musicnn/mean_pool", "MTT_musicnn/mean_pool"],
    # The backbones' tag knowledge, learned from 200k tracks: what carries over to new artists.
    "tags": ["MSD_musicnn/tag_logits", "MTT_musicnn/tag_logits"],
    "genre-tags": ["MSD_musicnn/genre_tag_logits", "MTT_musicnn/genre_tag_logits"],
    "tags+emb": ["MSD_musicnn/tag_logits", "MTT_musicnn/tag_logits", "MSD_musicnn/embedding", "MTT_musicnn/embedding"],
}


def backbones_of(feature_keys: list[str]) -> list[str]:
    seen = []
    for key in feature_keys:
        b = key.split("/")[0]
        if b not in seen:
            seen.append(b)
    return seen


def design(outputs: list[dict], label_idx: list[int], feature_keys: list[str], track_ids: list[int] | None = None):
    """Stack tracks' windows: ``X (N,d)``, ``y (N,)`` label indices, ``groups (N,)`` track indices."""
    xs, ys, gs = [], [], []
    for i, (out, lab) in enumerate(zip(outputs, label_idx)):
        x = assemble(out, feature_keys)
        xs.append(x)
        ys.append(np.full(len(x), lab))
        gs.append(np.full(len(x), i if track_ids is None else track_ids[i]))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)


def _logits_layer(W: np.ndarray, b: np.ndarray, n_present: int) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's binary form has one logit; softmax of (0, z) is the same as its sigmoid."""
    if n_present == 2:
        return np.concatenate([np.zeros_like(W), W], axis=1), np.concatenate([[0.0], b])
    return W, b


def _class_weight(spec: dict) -> str | None:
    return "balanced" if spec.get("balanced") else None


def fit_head(X: np.ndarray, y: np.ndarray, n_labels: int, spec: dict, seed: int = 0,
             sample_weight: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fit a head on standardised features; returns ``{mean, scale, W0, b0, ...}`` float32.

    ``sample_weight`` (per window, see ``balance_weights``) replaces the spec's class balancing.
    """
    from sklearn.exceptions import ConvergenceWarning

    mean = X.mean(axis=0)
    scale = X.std(axis=0) + 1e-6
    Z = (X - mean) / scale
    weights = {"mean": mean, "scale": scale}
    present = np.unique(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if spec["kind"] == "logreg":
            from sklearn.linear_model import LogisticRegression

            clf = LogisticRegression(C=spec.get("C", 1.0), max_iter=spec.get("max_iter", 300),
                                     class_weight=None if sample_weight is not None else _class_weight(spec))
            clf.fit(Z, y, sample_weight=sample_weight)
            layers = [_logits_layer(clf.coef_.T, clf.intercept_, len(present))]
        elif spec["kind"] == "kernel":
            from sklearn.kernel_approximation import Nystroem
            from sklearn.linear_model import LogisticRegression

            # γ = 1/d: the kernel width of a unit-variance feature space (sklearn's "scale").
            gamma = spec.get("gamma", 1.0 / Z.shape[1])
            nys = Nystroem(gamma=gamma, n_components=min(spec.get("centers", 1000), len(Z)), random_state=seed)
            K = nys.fit_transform(Z)
            clf = LogisticRegression(C=spec.get("C", 1.0), max_iter=spec.get("max_iter", 500),
                                     class_weight=None if sample_weight is not None else _class_weight(spec))
            clf.fit(K, y, sample_weight=sample_weight)
            # Nyström features are kernel values times a fixed matrix: fold it into the first layer.
            weights.update(centers=nys.components_, gamma=np.float32(gamma))
            layers = [_logits_layer(nys.normalization_.T @ clf.coef_.T, clf.intercept_, len(present))]
        elif spec["kind"] == "svm":
            weights.update(_fit_svm(Z, y, n_labels, spec, sample_weight))
            layers = []  # its dense layer is in the weights; pairwise coupling covers every label
        elif spec["kind"] == "mlp":
            from sklearn.neural_network import MLPClassifier

            clf = MLPClassifier(hidden_layer_sizes=(spec.get("hidden", 256),), alpha=spec.get("alpha", 1e-3),
                                max_iter=spec.get("max_iter", 200), random_state=seed, early_stopping=False)
            clf.fit(Z, y)
            layers = list(zip(clf.coefs_, clf.intercepts_))
            layers[-1] = _logits_layer(*layers[-1], len(present))
        else:
            raise ValueError(f"Unknown head kind {spec['kind']!r}")
    if layers:  # expand to all labels: a label absent from the training windows gets a very low logit
        W_last, b_last = layers[-1]
        W_full = np.zeros((W_last.shape[0], n_labels))
        b_full = np.full(n_labels, -30.0)
        W_full[:, present] = W_last
        b_full[present] = b_last
        layers[-1] = (W_full, b_full)
    for i, (W, b) in enumerate(layers):
        weights[f"W{i}"] = np.asarray(W, np.float32)
        weights[f"b{i}"] = np.asarray(b, np.float32)
    return {k: np.asarray(v, np.float32) for k, v in weights.items()}


def _ovo_pairs(classes: np.ndarray) -> np.ndarray:
    """Label pairs (i, j), i < j, in the order of an SVC's one-vs-one decision columns."""
    return np.array([(a, b) for n, a in enumerate(classes) for b in classes[n + 1:]], dtype=int).reshape(-1, 2)


def _ovo_layer(svc) -> np.ndarray:
    """(n_support_vectors, n_pairs) weights: kernel values @ W + intercept = the SVC's one-vs-one decisions."""
    starts = np.concatenate([[0], np.cumsum(svc.n_support_)])
    k = len(svc.classes_)
    W = np.zeros((len(svc.support_vectors_), k * (k - 1) // 2))
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
            W[si, p] = svc.dual_coef_[j - 1, si]
            W[sj, p] = svc.dual_coef_[i, sj]
            p += 1
    return W


def _fit_svm(Z: np.ndarray, y: np.ndarray, n_labels: int, spec: dict, sample_weight=None) -> dict:
    """RBF SVM, one-vs-one, with a Platt sigmoid per pair of labels.

    Exported as kernel centres (the support vectors), one dense layer giving the
    one-vs-one decisions, the sigmoids' ``platt_a``/``platt_b`` and the label ``pairs``;
    ``head_forward.dense_forward`` couples the pairwise probabilities into class probabilities.
    The sigmoids are fitted on the training windows' own decisions: sharper than
    out-of-fold ones, which made the SVM too timid beside a logistic-regression member
    (grouped CV of mean(emb+pools/logreg, emb/svm): score 80.7 in-sample, 80.1 out-of-fold).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    gamma = spec.get("gamma", 1.0 / Z.shape[1])
    svc = SVC(C=spec.get("C", 1.0), kernel="rbf", gamma=gamma, decision_function_shape="ovo",
              cache_size=500, class_weight=None if sample_weight is not None else _class_weight(spec)
              ).fit(Z, y, sample_weight=sample_weight)
    pairs = _ovo_pairs(svc.classes_)
    decisions = svc.decision_function(Z).reshape(len(Z), -1)
    a, b = np.zeros(len(pairs)), np.zeros(len(pairs))
    for n, (i, j) in enumerate(pairs):
        mask = (y == i) | (y == j)
        platt = LogisticRegression().fit(decisions[mask, n:n + 1], y[mask] == i)
        a[n], b[n] = platt.coef_[0, 0], platt.intercept_[0]
    return {"centers": svc.support_vectors_, "gamma": gamma, "W0": _ovo_layer(svc), "b0": svc.intercept_,
            "pairs": pairs, "platt_a": a, "platt_b": b, "n_labels": n_labels}


def grouped_folds(track_labels: np.ndarray, n_splits: int, seed: int,
                  groups: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test track indices; no group (by default, no track) straddles a fold.

    ``groups`` (one per track; see ``groups.track_groups``) keeps an artist's tracks
    together. Folds are stratified by genre when every genre has enough groups.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    tracks = np.arange(len(track_labels))
    groups = tracks if groups is None else np.asarray(groups)
    n_groups = len(np.unique(groups))
    n_splits = max(2, min(n_splits, n_groups))
    per_label = [len(np.unique(groups[track_labels == lab])) for lab in np.unique(track_labels)]
    if min(per_label) < n_splits:
        idx = np.random.default_rng(seed).permutation(len(track_labels))
        splitter = GroupKFold(n_splits=n_splits)
        return [(idx[a], idx[b]) for a, b in splitter.split(idx, track_labels[idx], groups=groups[idx])]
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(tracks, track_labels, groups=groups))


def balance_weights(y: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Per-window weights under which every genre weighs the same and, within a genre, every
    collection (``cells``: a collection index per window) weighs the same: a genre that one
    collection holds most of is not learnt as that collection's sound. Mean weight 1."""
    w = np.zeros(len(y))
    genres = np.unique(y)
    for g in genres:
        in_genre = y == g
        sources = np.unique(cells[in_genre])
        for c in sources:
            cell = in_genre & (cells == c)
            w[cell] = 1.0 / (len(genres) * len(sources) * cell.sum())
    return w * len(y)


def fit_members(outputs: dict[str, list[dict]], track_labels: np.ndarray, track_idx: np.ndarray, n_labels: int,
                members: list[tuple[list[str], dict]], train_conditions=("clean",),
                seed: int = 0, collections: np.ndarray | None = None) -> list[tuple[list[str], dict]]:
    """Fit every member head on the windows of ``track_idx`` under ``train_conditions``.

    With ``collections`` (an index per track) spanning more than one collection, windows are
    weighted by ``balance_weights``.
    """
    fitted = []
    for keys, spec in members:
        parts = [design([outputs[c][i] for i in track_idx], track_labels[track_idx], keys, track_idx)
                 for c in train_conditions]
        X = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        weight = None
        if collections is not None and len(np.unique(collections[track_idx])) > 1:
            weight = balance_weights(y, collections[np.concatenate([p[2] for p in parts])])
        fitted.append((keys, fit_head(X, y, n_labels, spec, seed=seed, sample_weight=weight)))
    return fitted


def cross_validate(outputs: dict[str, list[dict]], track_labels: np.ndarray, n_labels: int,
                   members: list[tuple[list[str], dict]], train_conditions=("clean",), eval_conditions=("clean",),
                   n_splits: int = 5, repeats: int = 1, seed: int = 0,
                   groups: np.ndarray | None = None, collections: np.ndarray | None = None,
                   folds=None) -> dict[str, dict]:
    """Held-out window probabilities of a candidate (its member heads), pooled over folds and repeats.

    ``groups`` (one per track) keeps each group's tracks on one side of every fold;
    ``collections`` (one per track) balances them in training (``fit_members``);
    ``folds`` (``(train, test)`` track indices) replaces the grouped folds (one repeat).
    Returns ``{condition: {"probs": (N,L), "y": (N,), "groups": (N,) track index, "repeat": (N,)}}``.
    """
    result = {c: {"probs": [], "y": [], "groups": [], "repeat": []} for c in eval_conditions}
    for r in range(1 if folds is not None else repeats):
        for train_idx, test_idx in folds if folds is not None else grouped_folds(track_labels, n_splits, seed + r,
                                                                                  groups):
            fitted = fit_members(outputs, track_labels, train_idx, n_labels, members, train_conditions, seed + r,
                                 collections)
            for c in eval_conditions:
                for i in test_idx:
                    probs = ensemble_forward(outputs[c][i], fitted)
                    res = result[c]
                    res["probs"].append(probs)
                    res["y"].append(np.full(len(probs), track_labels[i]))
                    res["groups"].append(np.full(len(probs), i))
                    res["repeat"].append(np.full(len(probs), r))
    return {c: {k: np.concatenate(v) for k, v in res.items()} for c, res in result.items()}


def calibrate_threshold(probs: np.ndarray, y: np.ndarray) -> float:
    """Top-probability threshold below which the model is more often wrong than right.

    Chosen to maximise (right − wrong) among the windows it keeps, on held-out predictions.
    """
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    order = np.argsort(conf)
    score = np.cumsum(np.where(correct[order], 1, -1)[::-1])[::-1]  # score of keeping order[k:]
    best = int(np.argmax(score))
    return float(conf[order][best]) if best > 0 else 0.0
