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
from .dataset import Track, check_label_counts, collection_arg, filter_split, list_collections
from .embeddings import collection_outputs
from .evaluate import metrics
from .groups import describe, track_groups
from .head import FEATURE_SETS, backbones_of, calibrate_threshold, cross_validate, fit_members
from ..model.model_format import FORMAT, format_version
from ..model.zeroshot import BACKBONES as ZEROSHOT_BACKBONES
from ..model.zeroshot import TAGS_OF_GENRE, shrink_toward_tags

# Every head is class-balanced: collections are rarely balanced (ours: 63 classical tracks,
# 19 rock), and an unbalanced head learns the share of the data, not the genre.
_GENRE_TAGS = ("genre-tags", {"kind": "logreg", "C": 0.01, "balanced": True})
_TAGS = ("tags", {"kind": "logreg", "C": 0.003, "balanced": True})
_EMB = ("emb", {"kind": "logreg", "C": 0.003, "balanced": True})
# Tags and embeddings together, less regularised: telling one collection's pop from its rock
# needs more than the tags' genre words.
_TAGS_EMB = ("tags+emb", {"kind": "logreg", "C": 0.03, "balanced": True})
DEFAULT_GRID = [
    _EMB,
    _TAGS_EMB,
    ("tags", {"kind": "logreg", "C": 0.001, "balanced": True}),
    _TAGS,
    _GENRE_TAGS,
    ("ensemble", {"kind": "ensemble", "members": [_GENRE_TAGS, _TAGS]}),
    ("ensemble", {"kind": "ensemble", "members": [_GENRE_TAGS, _TAGS, _EMB]}),
    ("ensemble", {"kind": "ensemble", "members": [_GENRE_TAGS, _TAGS_EMB]}),
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


def cv_metrics(held: dict[str, dict], labels: list[str], threshold: float | None,
               collections: list[str] | None = None, track_collection: np.ndarray | None = None) -> dict:
    """Scores of held-out predictions per condition; under ``clean`` also ``single_window`` (the
    tracks that make one window: clips of 3–6 s, excerpts shorter than a window) and, with
    ``collections`` (names; ``track_collection``: an index per track), ``by_collection``."""
    out = {}
    for c, res in held.items():
        out[c] = scores(res, labels, threshold)
        if c != "clean":
            continue
        _, inv, counts = np.unique(held_units(res), return_inverse=True, return_counts=True)
        single = counts[inv] == 1
        if single.any():
            m = scores(subset(res, single), labels, threshold)
            out[c]["single_window"] = {k: m[k] for k in ("n_tracks", "track_accuracy",
                                                         "balanced_track_accuracy", "per_genre_recall")}
        if collections and len(collections) > 1:
            row_collection = track_collection[res["groups"]]
            out[c]["by_collection"] = {}
            for k, name in enumerate(collections):
                part = subset(res, row_collection == k)
                m = scores(part, labels, threshold)
                _, pinv, pcounts = np.unique(held_units(part), return_inverse=True, return_counts=True)
                full = pcounts[pinv] > 1
                if full.any() and not full.all():  # whole clips apart from one-window excerpts
                    m["full_tracks"] = {k2: v for k2, v in scores(subset(part, full), labels, threshold).items()
                                        if k2 in ("n_tracks", "track_accuracy", "balanced_track_accuracy",
                                                  "per_genre_recall", "per_genre_recall_ci95")}
                out[c]["by_collection"][name] = m
    return out


def scores(res: dict, labels: list[str], threshold: float | None) -> dict:
    """``metrics`` of held-out rows, with 95 % intervals of each genre's track recall."""
    m = metrics(res["probs"], res["y"], held_units(res), labels, threshold)
    m["per_genre_recall_ci95"] = recall_intervals(m, labels, int(res["repeat"].max()) + 1 if len(res["y"]) else 1)
    return m


def subset(res: dict, rows: np.ndarray) -> dict:
    """The held-out rows selected by a boolean mask."""
    return {k: v[rows] for k, v in res.items()}


def collection_folds(track_collection: np.ndarray, track_labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-collection-out: train on every other collection, test on one (when the others hold
    at least two genres)."""
    folds = []
    for k in np.unique(track_collection):
        train, test = np.flatnonzero(track_collection != k), np.flatnonzero(track_collection == k)
        if len(np.unique(track_labels[train])) >= 2:
            folds.append((train, test))
    return folds


def cross_collection(held: dict, track_collection: np.ndarray, track_labels: np.ndarray) -> dict:
    """The held-out rows of each collection whose genre the other collections teach:
    ``{collection index: (rows mask, trained genres)}``."""
    row_collection = track_collection[held["groups"]]
    out = {}
    for k in np.unique(row_collection):
        taught = np.unique(track_labels[track_collection != k])
        out[int(k)] = ((row_collection == k) & np.isin(held["y"], taught), taught)
    return out


def loco_score(held: dict, track_collection: np.ndarray, track_labels: np.ndarray, n_labels: int) -> float | None:
    """Mean over held-out collections of the genre-balanced window accuracy on the genres taught."""
    parts = [selection_score({"clean": subset(held, rows)}, ("clean",), n_labels)
             for rows, _ in cross_collection(held, track_collection, track_labels).values() if rows.any()]
    return float(np.mean(parts)) if parts else None


def loco_metrics(held: dict, labels: list[str], threshold: float | None, collections: list[str],
                 track_collection: np.ndarray, track_labels: np.ndarray) -> dict:
    """Per held-out collection: its scores on the genres the other collections teach."""
    out = {}
    for k, (rows, taught) in cross_collection(held, track_collection, track_labels).items():
        if rows.any():
            m = scores(subset(held, rows), labels, threshold)
            m["trained_on"] = [n for j, n in enumerate(collections) if j != k]
            m["genres_scored"] = [labels[i] for i in taught if i in held["y"][rows]]
            out[collections[k]] = m
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
    from ..model.zeroshot import TAGS_OF_GENRE, genre_scores

    if not set(labels) <= set(TAGS_OF_GENRE) or "MSD_musicnn/tags" not in outputs[conditions[0]][0]:
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


def train_head(data_dirs, out_dir: str, *, split_files=None, groups_file: str | list[str] | None = None,
               n_augment: int = 2, n_mic: int = 0, live_sim: bool = False,
               grid=None, n_splits: int = 5, repeats: int = 2, hop_s: float = 3.0, level_norm: bool = True,
               cache_dir: str | None = None, progress: bool = True, name: str | None = None,
               description: str | None = None, seed: int = 0, log=print) -> dict:
    """Train, cross-validate and save a head; returns the saved ``model.json`` content.

    ``data_dirs``: one collection folder or several (e.g. full clips and short excerpts); ``NAME=FOLDER``
    names a folder's collection (``dataset.collection_arg``). With more than one collection, training
    balances them within each genre and selection also scores leave-one-collection-out.
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
    collections = sorted({t.collection for t in tracks})
    track_collection = np.array([collections.index(t.collection) for t in tracks])
    loco_folds = collection_folds(track_collection, track_labels) if len(collections) > 1 else []
    log(f"{len(tracks)} tracks, {len(labels)} genres: {', '.join(labels)}; collections: {', '.join(collections)}")
    log(f"validation folds: {describe(grouping)} ({n_groups} groups)"
        + (f"; and leave-one-collection-out ({len(loco_folds)} folds)" if loco_folds else ""))

    grid = grid or DEFAULT_GRID
    member_held: dict[str, dict] = {}  # an ensemble's held-out probabilities are its members' mean: fit each once
    for features, spec in grid:
        for member in candidate_members(features, spec):
            member_held.setdefault(json.dumps(member, sort_keys=True), member)
    member_loco: dict[str, dict] = {}
    for key, member in tqdm(list(member_held.items()), desc="cross-validate", unit="head", disable=not progress):
        member_held[key] = cross_validate(outputs, track_labels, len(labels), [member], train_conditions,
                                          eval_conditions, n_splits=n_splits, repeats=repeats, seed=seed,
                                          groups=groups, collections=track_collection)
        if loco_folds:
            member_loco[key] = cross_validate(outputs, track_labels, len(labels), [member], train_conditions,
                                              ("clean",), seed=seed, collections=track_collection,
                                              folds=loco_folds)
    priors = [None] + ([{"kind": "zeroshot", "weight": w} for w in PRIOR_WEIGHTS]
                       if any(TAGS_OF_GENRE.get(lab) for lab in labels) else [])
    tag_rows = held_zeroshot(outputs, next(iter(member_held.values())), labels) if len(priors) > 1 else None
    loco_tags = (held_zeroshot(outputs, next(iter(member_loco.values())), labels)
                 if loco_folds and len(priors) > 1 else None)
    candidates = []
    for features, spec in grid:
        keys = [json.dumps(m, sort_keys=True) for m in candidate_members(features, spec)]
        mean = mean_held([member_held[k] for k in keys])
        for prior in priors:
            held = with_prior(mean, tag_rows, labels, prior)
            cand = {"name": spec_name(features, spec, prior), "features": features, "spec": spec,
                    "prior": prior, "cv_score": selection_score(held, eval_conditions, len(labels)), "held": held}
            if loco_folds:
                cand["loco"] = with_prior(mean_held([member_loco[k] for k in keys]), loco_tags, labels, prior)
                cand["loco_score"] = loco_score(cand["loco"]["clean"], track_collection, track_labels, len(labels))
            # artists it never heard and collections it never heard weigh the same
            cand["score"] = float(np.mean([v for v in (cand["cv_score"], cand.get("loco_score")) if v is not None]))
            candidates.append(cand)
    best = max(candidates, key=lambda c: c["score"])
    pooled_probs = np.concatenate([best["held"][c]["probs"] for c in eval_conditions])
    pooled_y = np.concatenate([best["held"][c]["y"] for c in eval_conditions])
    threshold = round(calibrate_threshold(pooled_probs, pooled_y), 3)
    cv = cv_metrics(best["held"], labels, threshold, collections, track_collection)
    loco = (loco_metrics(best["loco"]["clean"], labels, threshold, collections, track_collection, track_labels)
            if loco_folds else None)
    members = candidate_members(best["features"], best["spec"])
    same_artist = None
    if grouping != "track":  # the figure a user of the training artists would see, for comparison
        held = cross_validate(outputs, track_labels, len(labels), members, train_conditions, ("clean",),
                              n_splits=n_splits, repeats=repeats, seed=seed, collections=track_collection)
        if best["prior"]:
            held = with_prior(held, held_zeroshot(outputs, held, labels), labels, best["prior"])
        same_artist = cv_metrics(held, labels, threshold)["clean"]
    log(f"chosen {best['name']}: {grouping}-grouped CV track accuracy {cv['clean']['track_accuracy']:.3f} "
        f"(genre-balanced {cv['clean']['balanced_track_accuracy']:.3f}), window accuracy "
        f"{cv['clean']['window_accuracy']:.3f}, uncertain threshold {threshold}")
    for name_, m in (cv["clean"].get("by_collection") or {}).items():
        log(f"  {name_}: artist-disjoint track accuracy {m['track_accuracy']:.3f} "
            f"(genre-balanced {m['balanced_track_accuracy']:.3f})")
    for name_, m in (loco or {}).items():
        log(f"  {name_} held out whole (trained on {', '.join(m['trained_on'])}): track accuracy "
            f"{m['track_accuracy']:.3f} (genre-balanced {m['balanced_track_accuracy']:.3f}) "
            f"on {', '.join(m['genres_scored'])}")
    if same_artist:
        log(f"  same-artist (grouped by track only): track accuracy {same_artist['track_accuracy']:.3f}, "
            f"window accuracy {same_artist['window_accuracy']:.3f}")

    fitted = fit_members(outputs, track_labels, np.arange(len(tracks)), len(labels), members, train_conditions, seed,
                         track_collection)
    head, weights = export_head(best["features"], best["spec"], fitted)
    if best["prior"]:
        head = {**head, "prior": best["prior"]}
    feature_keys = list(dict.fromkeys(k for keys, _ in members for k in keys))
    backbones = backbones_of(feature_keys + (list(TAG_KEYS) if best["prior"] else []))

    name = name or os.path.basename(os.path.normpath(out_dir))
    counts = {lab: int(np.sum(track_labels == i)) for i, lab in enumerate(labels)}
    folders = ", ".join(os.path.basename(os.path.normpath(collection_arg(d)[1])) for d in data_dirs)
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
                               "window accuracy, each track weighted once"
                               + ("; averaged with the same score leave-one-collection-out" if loco else ""),
            "candidates": [{k: c.get(k) for k in ("name", "score", "cv_score", "loco_score")} for c in candidates],
            "conditions": cv,
            "same_artist": same_artist,
            "collections": collections,
            "tracks_per_collection": {n: {lab: int(np.sum((track_collection == k) & (track_labels == i)))
                                          for i, lab in enumerate(labels)} for k, n in enumerate(collections)},
            "leave_one_collection_out": loco,
        },
        "zeroshot_baseline": zeroshot_baseline(outputs, labels, track_labels, eval_conditions),
        "training_data": {"folders": [os.path.abspath(collection_arg(d)[1]) for d in data_dirs], "n_tracks": len(tracks),
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
