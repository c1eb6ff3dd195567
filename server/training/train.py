"""``train``: choose a head by artist-disjoint cross-validation, calibrate, fit on everything, save.

Steps: list the collection(s); cache backbone outputs of every track under the clean and
augmented conditions; cross-validate each (feature set, head) candidate with folds that
keep an artist's tracks together (``groups``); keep the best by genre-balanced held-out
accuracy; calibrate the uncertain threshold on its held-out predictions; measure it
also with folds grouped by track only (the same-artist figure); fit it on all tracks;
write ``model.json`` + ``weights.npz`` (+ ``confusion.png``).
"""

from __future__ import annotations

import datetime
import json
import os

import numpy as np

from . import augment
from .dataset import Track, check_label_counts, filter_split, list_collections
from .embeddings import collection_outputs
from .evaluate import metrics
from .groups import describe, track_groups
from .head import FEATURE_SETS, backbones_of, calibrate_threshold, cross_validate, fit_members
from ..model.heads import FORMAT, format_version
from ..model.zeroshot import BACKBONES as ZEROSHOT_BACKBONES
from ..model.zeroshot import GTZAN_TAGS, shrink_toward_tags

# Every head is class-balanced: collections are rarely balanced (ours: 63 classical tracks,
# 19 rock), and an unbalanced head learns the share of the data, not the genre.
_GENRE_TAGS = ("genre-tags", {"kind": "logreg", "C": 0.01, "balanced": True})
_TAGS = ("tags", {"kind": "logreg", "C": 0.003, "balanced": True})
_EMB = ("emb", {"kind": "logreg", "C": 0.003, "balanced": True})
DEFAULT_GRID = [
    _EMB,
    ("tags", {"kind": "logreg", "C": 0.001, "balanced": True}),
    _TAGS,
    _GENRE_TAGS,
    ("ensemble", {"kind": "ensemble", "members": [_GENRE_TAGS, _TAGS]}),
    ("ensemble", {"kind": "ensemble", "members": [_GENRE_TAGS, _TAGS, _EMB]}),
]

QUICK_GRID = [_TAGS]
# Weights of the zero-shot tag map a candidate's probabilities may be shrunk toward.
PRIOR_WEIGHTS = (0.35, 0.5)
TAG_KEYS = tuple(f"{b}/tags" for b in ZEROSHOT_BACKBONES)  # what the prior reads


def spec_name(features: str, spec: dict, prior: dict | None = None) -> str:
    if prior:
        return f"{spec_name(features, spec)} → {prior['weight']:g}·zero-shot tags"
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
    check_label_counts(tracks)
    labels = sorted({t.label for t in tracks})
    return labels, np.array([labels.index(t.label) for t in tracks])


def cv_metrics(held_out: dict[str, dict], labels: list[str], threshold: float | None) -> dict:
    """Scores of held-out predictions per condition; under ``clean`` also ``single_window``: the
    tracks that make one window (clips of 3–6 s, excerpts shorter than a window)."""
    out = {}
    for c, res in held_out.items():
        groups = held_units(res)
        out[c] = metrics(res["probs"], res["y"], groups, labels, threshold)
        out[c]["per_genre_recall_ci95"] = recall_intervals(out[c], labels, res["repeat"].max() + 1)
        if c == "clean":
            _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
            single = counts[inv] == 1
            if single.any():
                m = metrics(res["probs"][single], res["y"][single], groups[single], labels, threshold)
                out[c]["single_window"] = {k: m[k] for k in ("n_tracks", "track_accuracy",
                                                             "balanced_track_accuracy", "per_genre_recall")}
    return out


def held_units(res: dict) -> np.ndarray:
    """Per held-out row, its (repeat, track): a track held out in two repeats counts twice."""
    return res["repeat"] * (res["groups"].max() + 1) + res["groups"]


def recall_intervals(m: dict, labels: list[str], repeats: int) -> dict[str, list[float]]:
    """95 % Wilson intervals of each genre's track recall, counting each track once (not once per repeat)."""
    conf = np.asarray(m["confusion"])
    out = {}
    for i, lab in enumerate(labels):
        n = conf[i].sum() / repeats
        if n:
            out[lab] = [round(v, 3) for v in wilson_interval(conf[i, i] / conf[i].sum(), n)]
    return out


def wilson_interval(p: float, n: float, z: float = 1.96) -> tuple[float, float]:
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def held_zeroshot(outputs: dict[str, list[dict]], held: dict[str, dict], labels: list[str]) -> dict[str, dict]:
    """The backbone tags of every held-out window, in ``held``'s row order (for the zero-shot prior)."""
    out = {}
    for c, res in held.items():
        key = held_units(res)
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        tracks = res["groups"][starts]
        out[c] = {k: np.concatenate([outputs[c][i][k] for i in tracks]) for k in TAG_KEYS}
    return out


def with_prior(held: dict[str, dict], tag_rows: dict[str, dict], labels: list[str],
               prior: dict | None) -> dict[str, dict]:
    if prior is None:
        return held
    return {c: {**r, "probs": shrink_toward_tags(r["probs"], tag_rows[c], labels, prior["weight"])}
            for c, r in held.items()}


def mean_held(members: list[dict[str, dict]]) -> dict[str, dict]:
    """Held-out predictions of the mean of heads whose own were made on the same folds."""
    if len(members) == 1:
        return members[0]
    return {c: {**members[0][c], "probs": np.mean([m[c]["probs"] for m in members], axis=0)} for c in members[0]}


def selection_score(held: dict[str, dict], conditions, n_labels: int) -> float:
    """Mean over ``conditions`` of the genre-balanced window accuracy, each track weighted once.

    Every genre counts the same, and a 30-s clip (ten windows) as much as a 2-s excerpt (one),
    so neither the collection's biggest genre nor its longest tracks decide the choice.
    """
    scores = []
    for c in conditions:
        res = held[c]
        right = (res["probs"].argmax(1) == res["y"]).astype(float)
        _, inv, counts = np.unique(held_units(res), return_inverse=True, return_counts=True)
        weight = 1.0 / counts[inv]
        per_genre = [np.sum(right[m] * weight[m]) / np.sum(weight[m])
                     for m in (res["y"] == lab for lab in range(n_labels)) if m.any()]
        scores.append(float(np.mean(per_genre)))
    return float(np.mean(scores))


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


def train_head(data_dirs, out_dir: str, *, split_files=None, groups_file: str | None = None,
               n_augment: int = 2, n_mic: int = 0, live_sim: bool = False,
               grid=None, n_splits: int = 5, repeats: int = 2, hop_s: float = 3.0, level_norm: bool = True,
               cache_dir: str | None = None, progress: bool = True, name: str | None = None,
               description: str | None = None, seed: int = 0, log=print) -> dict:
    """Train, cross-validate and save a head; returns the saved ``model.json`` content.

    ``data_dirs``: one collection folder or several (e.g. full clips and short excerpts).
    """
    from tqdm import tqdm

    data_dirs = [data_dirs] if isinstance(data_dirs, str) else list(data_dirs)
    skipped: dict[str, str] = {}
    listed = list_collections(data_dirs, skipped)
    tracks = filter_split(listed, split_files)
    train_conditions = (("clean",) + tuple(f"rand{k}" for k in range(n_augment))
                        + tuple(f"mic{k}" for k in range(n_mic)))
    eval_conditions = augment.EVAL_CONDITIONS + (augment.LIVE_CONDITION,) if live_sim else ("clean",)
    conditions = tuple(dict.fromkeys(train_conditions + eval_conditions))
    outputs = collection_outputs(tracks, conditions, hop_s=hop_s, level_norm=level_norm,
                                 cache_dir=cache_dir, progress=progress, failed=skipped)
    tracks = [t for t in tracks if t.path not in skipped]
    for path, why in skipped.items():
        log(f"skipped {path}: {why}")
    labels, track_labels = label_index(tracks)
    groups, grouping = track_groups(tracks, groups_file=groups_file, split_files=split_files)
    n_groups = len(np.unique(groups))
    log(f"{len(tracks)} tracks, {len(labels)} genres: {', '.join(labels)}")
    log(f"validation folds: {describe(grouping)} ({n_groups} groups)")

    grid = grid or DEFAULT_GRID
    member_held: dict[str, dict] = {}  # an ensemble's held-out probabilities are its members' mean: fit each once
    for features, spec in grid:
        for member in candidate_members(features, spec):
            member_held.setdefault(json.dumps(member, sort_keys=True), member)
    for key, member in tqdm(list(member_held.items()), desc="cross-validate", unit="head", disable=not progress):
        member_held[key] = cross_validate(outputs, track_labels, len(labels), [member], train_conditions,
                                          eval_conditions, n_splits=n_splits, repeats=repeats, seed=seed,
                                          groups=groups)
    priors = [None] + ([{"kind": "zeroshot", "weight": w} for w in PRIOR_WEIGHTS]
                       if any(GTZAN_TAGS.get(lab) for lab in labels) else [])
    tag_rows = held_zeroshot(outputs, next(iter(member_held.values())), labels) if len(priors) > 1 else None
    candidates = []
    for features, spec in grid:
        mean = mean_held([member_held[json.dumps(m, sort_keys=True)] for m in candidate_members(features, spec)])
        for prior in priors:
            held = with_prior(mean, tag_rows, labels, prior)
            candidates.append({"name": spec_name(features, spec, prior), "features": features, "spec": spec,
                               "prior": prior, "score": selection_score(held, eval_conditions, len(labels)),
                               "held": held})
    best = max(candidates, key=lambda c: c["score"])
    pooled_probs = np.concatenate([best["held"][c]["probs"] for c in eval_conditions])
    pooled_y = np.concatenate([best["held"][c]["y"] for c in eval_conditions])
    threshold = round(calibrate_threshold(pooled_probs, pooled_y), 3)
    cv = cv_metrics(best["held"], labels, threshold)
    members = candidate_members(best["features"], best["spec"])
    same_artist = None
    if grouping != "track":  # the figure a user of the training artists would see, for comparison
        held = cross_validate(outputs, track_labels, len(labels), members, train_conditions, ("clean",),
                              n_splits=n_splits, repeats=repeats, seed=seed)
        if best["prior"]:
            held = with_prior(held, held_zeroshot(outputs, held, labels), labels, best["prior"])
        same_artist = cv_metrics(held, labels, threshold)["clean"]
    log(f"chosen {best['name']}: {grouping}-grouped CV track accuracy {cv['clean']['track_accuracy']:.3f} "
        f"(genre-balanced {cv['clean']['balanced_track_accuracy']:.3f}), window accuracy "
        f"{cv['clean']['window_accuracy']:.3f}, uncertain threshold {threshold}")
    if same_artist:
        log(f"  same-artist (grouped by track only): track accuracy {same_artist['track_accuracy']:.3f}, "
            f"window accuracy {same_artist['window_accuracy']:.3f}")

    fitted = fit_members(outputs, track_labels, np.arange(len(tracks)), len(labels), members, train_conditions, seed)
    head, weights = export_head(best["features"], best["spec"], fitted)
    if best["prior"]:
        head = {**head, "prior": best["prior"]}
    feature_keys = list(dict.fromkeys(k for keys, _ in members for k in keys))
    backbones = backbones_of(feature_keys + (list(TAG_KEYS) if best["prior"] else []))

    name = name or os.path.basename(os.path.normpath(out_dir))
    counts = {lab: int(np.sum(track_labels == i)) for i, lab in enumerate(labels)}
    folders = ", ".join(os.path.basename(os.path.normpath(d)) for d in data_dirs)
    summary = ("window_accuracy", "track_accuracy", "balanced_track_accuracy", "macro_f1",
               "uncertain_rate", "accuracy_when_certain")
    meta = {
        "format": FORMAT, "version": format_version(head), "name": name, "arch": "head",
        "description": description or f"{best['name']} on musicnn outputs, trained on {len(tracks)} tracks "
                                      f"of {folders}",
        "labels": labels,
        "uncertain_threshold": threshold,
        "uncertain_rule": "top probability below the threshold",
        "features": {"backbones": backbones, "keys": feature_keys, "level_norm": level_norm,
                     "input": "log10(10000*mel+1) of 48128 16-kHz samples, 96 mel bands, n_fft 512, hop 256"},
        "head": head, "weights": "weights.npz",
        "metrics": {**{k: cv["clean"][k] for k in summary}, "protocol": describe(grouping)},
        "cross_validation": {
            "folds": n_splits, "repeats": repeats, "grouped_by": grouping, "grouping": describe(grouping),
            "n_groups": n_groups, "hop_s": hop_s,
            "train_conditions": list(train_conditions),
            "selection_score": "mean over " + ", ".join(eval_conditions) + " of the genre-balanced held-out "
                               "window accuracy, each track weighted once",
            "candidates": [{"name": c["name"], "score": c["score"]} for c in candidates],
            "conditions": cv,
            "same_artist": same_artist,
        },
        "zeroshot_baseline": zeroshot_baseline(outputs, labels, track_labels, eval_conditions),
        "training_data": {"folders": [os.path.abspath(d) for d in data_dirs], "n_tracks": len(tracks),
                          "tracks_per_label": counts, "split_files": list(split_files or []),
                          "skipped": skipped, "not_in_split_files": len(listed) - len(tracks),
                          "n_windows": sum(len(next(iter(o.values()))) for c in train_conditions for o in outputs[c])},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    save_model_dir(out_dir, meta, weights)
    save_confusion_png(cv["clean"]["confusion"], labels, os.path.join(out_dir, "confusion.png"),
                       f"{name}: held-out track predictions ({grouping}-grouped, {n_splits}-fold x{repeats})")
    return meta


def save_model_dir(out_dir: str, meta: dict, weights: dict[str, np.ndarray]) -> None:
    os.makedirs(out_dir, exist_ok=True)
    np.savez(os.path.join(out_dir, "weights.npz"), **weights)
    with open(os.path.join(out_dir, "model.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
