"""``train``: choose a head by grouped cross-validation, calibrate, fit on everything, save.

Steps: list the collection; cache backbone outputs of every track under the clean and
augmented conditions; cross-validate each (feature set, head) candidate with folds
grouped by track; keep the best by mean held-out window accuracy; calibrate the
uncertain threshold on its held-out predictions; fit it on all tracks; write
``model.json`` + ``weights.npz`` (+ ``confusion.png``).
"""

from __future__ import annotations

import datetime
import json
import os

import numpy as np

from . import augment
from .dataset import DatasetError, Track, filter_split, list_tracks
from .embeddings import collection_outputs
from .evaluate import metrics
from .head import FEATURE_SETS, backbones_of, calibrate_threshold, cross_validate, fit_members
from ..model.heads import FORMAT, format_version

_EMB_LOGREG = ("emb", {"kind": "logreg", "C": 0.01})
_POOLS_LOGREG = ("emb+pools", {"kind": "logreg", "C": 0.1})
_EMB_KERNEL = ("emb", {"kind": "kernel", "centers": 1000, "C": 1.0})
_EMB_SVM = ("emb", {"kind": "svm", "C": 1.0})
DEFAULT_GRID = [
    _EMB_LOGREG,
    ("emb+tags", {"kind": "logreg", "C": 0.1}),
    _POOLS_LOGREG,
    _EMB_KERNEL,
    ("ensemble", {"kind": "ensemble", "members": [_POOLS_LOGREG, _EMB_LOGREG]}),
    ("ensemble", {"kind": "ensemble", "members": [_POOLS_LOGREG, _EMB_KERNEL]}),
    ("ensemble", {"kind": "ensemble", "members": [_POOLS_LOGREG, _EMB_SVM]}),
]

QUICK_GRID = [("emb", {"kind": "logreg", "C": 0.1})]


def spec_name(features: str, spec: dict) -> str:
    if spec["kind"] == "ensemble":
        return "mean(" + ", ".join(spec_name(f, s) for f, s in spec["members"]) + ")"
    extra = ",".join(f"{k}={v}" for k, v in spec.items() if k != "kind")
    return f"{features}/{spec['kind']}({extra})"


def candidate_members(features: str, spec: dict) -> list[tuple[list[str], dict]]:
    """A grid entry's member heads as ``(feature keys, spec)``: one, or an ensemble's members."""
    if spec["kind"] == "ensemble":
        return [(FEATURE_SETS[f], s) for f, s in spec["members"]]
    return [(FEATURE_SETS[features], spec)]


def export_head(features: str, spec: dict, fitted: list[tuple[list[str], dict]]) -> tuple[dict, dict]:
    """``(model.json "head", weights.npz arrays)``: a single head as before; members as ``m<j>.<name>``."""
    if spec["kind"] != "ensemble":
        return spec, fitted[0][1]
    head = {"kind": "ensemble", "combine": "mean of probabilities",
            "members": [{"features": f, "keys": keys, "spec": s}
                        for (f, s), (keys, _) in zip(spec["members"], fitted)]}
    return head, {f"m{j}.{k}": v for j, (_, w) in enumerate(fitted) for k, v in w.items()}


def label_index(tracks: list[Track]) -> tuple[list[str], np.ndarray]:
    labels = sorted({t.label for t in tracks})
    if len(labels) < 2:
        raise DatasetError(f"Training needs at least two genre folders; found {labels or 'none'}.")
    return labels, np.array([labels.index(t.label) for t in tracks])


def cv_metrics(held_out: dict[str, dict], labels: list[str], n_tracks: int, threshold: float | None) -> dict:
    out = {}
    for c, res in held_out.items():
        groups = res["repeat"] * n_tracks + res["groups"]  # a track in two repeats counts twice
        out[c] = metrics(res["probs"], res["y"], groups, labels, threshold)
    return out


def zeroshot_baseline(outputs: dict[str, list[dict]], labels: list[str], track_labels: np.ndarray,
                      conditions) -> dict | None:
    """The zero-shot tag mapping scored on the same tracks (no fitting), when it names these labels."""
    from ..model.zeroshot import GTZAN_TAGS, genre_scores

    if not set(labels) <= set(GTZAN_TAGS) or "MSD_musicnn/tags" not in outputs[conditions[0]][0]:
        return None
    result = {}
    for c in conditions:
        probs = [genre_scores(o, labels) for o in outputs[c]]
        y = np.concatenate([np.full(len(p), lab) for p, lab in zip(probs, track_labels)])
        g = np.concatenate([np.full(len(p), i) for i, p in enumerate(probs)])
        m = metrics(np.concatenate(probs), y, g, labels)
        result[c] = {k: m[k] for k in ("window_accuracy", "track_accuracy", "macro_f1", "per_genre_recall")}
    return result


def save_confusion_png(conf: list[list[int]], labels: list[str], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(conf)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    ax.imshow(conf, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if conf[i, j]:
                ax.text(j, i, int(conf[i, j]), ha="center", va="center",
                        color="white" if conf[i, j] > conf.max() / 2 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def train_head(data_dir: str, out_dir: str, *, split_files=None, n_augment: int = 2, n_mic: int = 0,
               live_sim: bool = False,
               grid=None, n_splits: int = 5, repeats: int = 2, hop_s: float = 3.0, level_norm: bool = True,
               cache_dir: str | None = None, progress: bool = True, name: str | None = None,
               description: str | None = None, seed: int = 0, log=print) -> dict:
    """Train, cross-validate and save a head; returns the saved ``model.json`` content."""
    from tqdm import tqdm

    tracks = filter_split(list_tracks(data_dir), split_files)
    labels, track_labels = label_index(tracks)
    train_conditions = (("clean",) + tuple(f"rand{k}" for k in range(n_augment))
                        + tuple(f"mic{k}" for k in range(n_mic)))
    eval_conditions = augment.EVAL_CONDITIONS + (augment.LIVE_CONDITION,) if live_sim else ("clean",)
    conditions = tuple(dict.fromkeys(train_conditions + eval_conditions))
    log(f"{len(tracks)} tracks, {len(labels)} genres: {', '.join(labels)}")
    outputs = collection_outputs(tracks, conditions, hop_s=hop_s, level_norm=level_norm,
                                 cache_dir=cache_dir, progress=progress)

    grid = grid or DEFAULT_GRID
    candidates = []
    for features, spec in tqdm(grid, desc="cross-validate", unit="head", disable=not progress):
        held = cross_validate(outputs, track_labels, len(labels), candidate_members(features, spec),
                              train_conditions, eval_conditions, n_splits=n_splits, repeats=repeats, seed=seed)
        accs = [np.mean(held[c]["probs"].argmax(1) == held[c]["y"]) for c in eval_conditions]
        candidates.append({"name": spec_name(features, spec), "features": features, "spec": spec,
                           "score": float(np.mean(accs)), "held": held})
    best = max(candidates, key=lambda c: c["score"])
    pooled_probs = np.concatenate([best["held"][c]["probs"] for c in eval_conditions])
    pooled_y = np.concatenate([best["held"][c]["y"] for c in eval_conditions])
    threshold = round(calibrate_threshold(pooled_probs, pooled_y), 3)
    cv = cv_metrics(best["held"], labels, len(tracks), threshold)
    log(f"chosen {best['name']}: CV window accuracy {cv['clean']['window_accuracy']:.3f}, "
        f"track accuracy {cv['clean']['track_accuracy']:.3f}, uncertain threshold {threshold}")

    members = candidate_members(best["features"], best["spec"])
    fitted = fit_members(outputs, track_labels, np.arange(len(tracks)), len(labels), members, train_conditions, seed)
    head, weights = export_head(best["features"], best["spec"], fitted)
    feature_keys = list(dict.fromkeys(k for keys, _ in members for k in keys))

    name = name or os.path.basename(os.path.normpath(out_dir))
    counts = {lab: int(np.sum(track_labels == i)) for i, lab in enumerate(labels)}
    meta = {
        "format": FORMAT, "version": format_version(head), "name": name, "arch": "head",
        "description": description or f"{best['name']} on musicnn outputs, trained on {len(tracks)} tracks "
                                      f"of {os.path.basename(os.path.normpath(data_dir))}",
        "labels": labels,
        "uncertain_threshold": threshold,
        "uncertain_rule": "top probability below the threshold",
        "features": {"backbones": backbones_of(feature_keys), "keys": feature_keys, "level_norm": level_norm,
                     "input": "log10(10000*mel+1) of 48128 16-kHz samples, 96 mel bands, n_fft 512, hop 256"},
        "head": head, "weights": "weights.npz",
        "metrics": {k: cv["clean"][k] for k in ("window_accuracy", "track_accuracy", "macro_f1",
                                                 "uncertain_rate", "accuracy_when_certain")},
        "cross_validation": {
            "folds": n_splits, "repeats": repeats, "grouped_by": "track", "hop_s": hop_s,
            "train_conditions": list(train_conditions), "selection_score": "mean held-out window accuracy over "
                                                                          + ", ".join(eval_conditions),
            "candidates": [{"name": c["name"], "score": c["score"]} for c in candidates],
            "conditions": cv,
        },
        "zeroshot_baseline": zeroshot_baseline(outputs, labels, track_labels, eval_conditions),
        "training_data": {"folder": os.path.abspath(data_dir), "n_tracks": len(tracks),
                          "tracks_per_label": counts, "split_files": list(split_files or []),
                          "n_windows": sum(len(next(iter(o.values()))) for c in train_conditions for o in outputs[c])},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    save_model_dir(out_dir, meta, weights)
    save_confusion_png(cv["clean"]["confusion"], labels, os.path.join(out_dir, "confusion.png"),
                       f"{name}: cross-validated track predictions ({n_splits}-fold x{repeats})")
    return meta


def save_model_dir(out_dir: str, meta: dict, weights: dict[str, np.ndarray]) -> None:
    os.makedirs(out_dir, exist_ok=True)
    np.savez(os.path.join(out_dir, "weights.npz"), **weights)
    with open(os.path.join(out_dir, "model.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
