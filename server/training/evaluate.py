"""Scoring genre predictions: window and track accuracy, macro F1, confusion, uncertainty.

``evaluate_collection`` runs a loaded ``GenreModel`` on a folder-per-genre collection
through the live path (16-kHz resampling, each window's mel on its own); it never fits
anything. Each track is read as a stream (``track_stream``), a batch of windows at a time.
Tracks whose folder is not one of the model's labels are reported and left out,
except folders named after a content that is not music (``speech/``, ``silence/``,
``noise/``): their windows score the content decision (``content_metrics``) beside the
genre folders' windows, which should all be music.
"""

from __future__ import annotations

import numpy as np

from ..model.content import CONTENT_LABELS, MUSIC, NOT_MUSIC, SPEECH
from . import augment
from .dataset import LIVE_CAPTURE_SR, Track, file_hash, filter_split, list_tracks
from .track_stream import condition_windows, live_windows


def _f1(conf: np.ndarray) -> np.ndarray:
    tp = np.diag(conf).astype(float)
    prec = np.divide(tp, conf.sum(axis=0), out=np.zeros_like(tp), where=conf.sum(axis=0) > 0)
    rec = np.divide(tp, conf.sum(axis=1), out=np.zeros_like(tp), where=conf.sum(axis=1) > 0)
    return np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)


def _confusion(y: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    conf = np.zeros((n, n), int)
    np.add.at(conf, (y, pred), 1)
    return conf


def metrics(probs: np.ndarray, y: np.ndarray, groups: np.ndarray, labels: list[str],
            threshold: float | None = None) -> dict:
    """Window- and track-level scores; a track's genre is the argmax of its mean window probabilities.

    Macro F1 averages over the labels that occur in ``y``.
    """
    n = len(labels)
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, int)
    uniq, inv = np.unique(groups, return_inverse=True)
    track_probs = np.zeros((len(uniq), n))
    np.add.at(track_probs, inv, probs)
    track_y = np.zeros(len(uniq), int)
    track_y[inv] = y
    track_pred = track_probs.argmax(axis=1) if len(uniq) else np.zeros(0, int)
    wconf, tconf = _confusion(y, pred, n), _confusion(track_y, track_pred, n)
    present = np.bincount(y, minlength=n) > 0
    conf_top = probs.max(axis=1) if len(probs) else np.zeros(0)
    uncertain = conf_top < threshold if threshold is not None else np.zeros(len(probs), bool)
    certain = ~uncertain
    with np.errstate(invalid="ignore", divide="ignore"):
        t_recall = np.diag(tconf) / tconf.sum(axis=1)
        w_recall = np.diag(wconf) / wconf.sum(axis=1)
    return {
        "labels": list(labels),
        "n_tracks": int(len(uniq)),
        "n_windows": int(len(y)),
        "window_accuracy": float(np.mean(pred == y)) if len(y) else 0.0,
        "track_accuracy": float(np.mean(track_pred == track_y)) if len(uniq) else 0.0,
        "balanced_track_accuracy": float(np.mean(t_recall[present])) if present.any() else 0.0,
        "macro_f1": float(_f1(tconf)[present].mean()) if present.any() else 0.0,
        "window_macro_f1": float(_f1(wconf)[present].mean()) if present.any() else 0.0,
        "confusion": tconf.tolist(),
        "window_confusion": wconf.tolist(),
        "per_genre_recall": {lab: float(t_recall[i]) for i, lab in enumerate(labels) if present[i]},
        "per_genre_window_recall": {lab: float(w_recall[i]) for i, lab in enumerate(labels) if present[i]},
        "uncertain_threshold": threshold,
        "uncertain_rate": float(np.mean(uncertain)) if len(y) else 0.0,
        "accuracy_when_certain": float(np.mean(pred[certain] == y[certain])) if certain.any() else None,
    }


def content_metrics(truth, pred, genres) -> dict:
    """How the content decision did: a confusion over ``CONTENT_LABELS`` (rows true, columns
    decided), recall per true content, and how often music windows lost their genre, over all
    and per genre (``genres``: each window's genre folder, None for non-music windows)."""
    idx = {c: i for i, c in enumerate(CONTENT_LABELS)}
    conf = np.zeros((len(CONTENT_LABELS),) * 2, int)
    for t, p in zip(truth, pred):
        conf[idx[t], idx[p]] += 1
    truth, pred, genres = np.asarray(truth), np.asarray(pred), np.asarray(genres, dtype=object)
    music = truth == MUSIC

    def rate(mask, what) -> float | None:
        return float(np.mean(pred[mask] == what)) if mask.any() else None

    per_genre = {g: {"windows": int((genres == g).sum()), "as_speech": rate(genres == g, SPEECH),
                     "not_music": float(np.mean(pred[genres == g] != MUSIC))}
                 for g in sorted({g for g in genres[music] if g is not None})}
    return {
        "labels": list(CONTENT_LABELS),
        "confusion": conf.tolist(),
        "windows": {c: int(conf[i].sum()) for c, i in idx.items()},
        "recall": {c: float(conf[i, i] / conf[i].sum()) for c, i in idx.items() if conf[i].sum()},
        "speech_recall": rate(truth == SPEECH, SPEECH),
        "music_as_speech": rate(music, SPEECH),
        "music_not_music": float(np.mean(pred[music] != MUSIC)) if music.any() else None,
        "per_genre": per_genre,
    }


def split_known(tracks: list[Track], labels: list[str]) -> tuple[list[Track], dict[str, int]]:
    """Tracks whose folder is a model label, and ``{folder: count}`` of the others."""
    known = [t for t in tracks if t.label in labels]
    skipped: dict[str, int] = {}
    for t in tracks:
        if t.label not in labels:
            skipped[t.label] = skipped.get(t.label, 0) + 1
    return known, skipped


def _analyse_track(model, path: str, condition: str, digest: str, hop_s: float, batch: int,
                   source_id: str) -> tuple[np.ndarray, list[str]]:
    """``(probs (W, labels), contents)`` of a track's windows under ``condition``, streamed."""
    if condition == augment.LIVE_CONDITION:
        batches = live_windows(path, source_id, LIVE_CAPTURE_SR, batch=batch)
    else:
        batches = ((mels, None) for mels in condition_windows(path, condition, digest, hop_s, batch))
    results = [model.analyse(mels, streams) for mels, streams in batches]
    probs = np.concatenate([r.probs for r in results]) if results else np.zeros((0, len(model.labels)), np.float32)
    return probs, [x for r in results for x in r.content]


def evaluate_collection(model, data_dir: str, split_files=None, conditions=("clean",), hop_s: float = 3.0,
                        progress: bool = True, batch: int = 64) -> dict:
    """Run ``model`` on every known track under each condition; ``{"conditions": {c: metrics}, ...}``."""
    from tqdm import tqdm

    from ..audio.decode import DecodeError

    unreadable: dict[str, str] = {}
    listed = list_tracks(data_dir, unreadable)
    non_music = [t for t in listed if t.label in NOT_MUSIC and t.label not in model.labels]
    tracks, skipped = split_known(filter_split([t for t in listed if t not in non_music], split_files), model.labels)
    failed: dict[str, str] = {path: why for path, why in unreadable.items()}
    per_cond: dict[str, dict] = {c: {"probs": [], "y": [], "groups": [], "content": [], "truth": [], "genre": [],
                                     "end_to_end": []} for c in conditions}
    with tqdm(total=len(tracks) * len(conditions), desc="evaluate", unit="track", disable=not progress) as bar:
        for i, track in enumerate(tracks + non_music):
            try:
                digest = file_hash(track.path)
                # Every condition's windows first: a track that fails to decode counts nowhere.
                analysed = [(c, _analyse_track(model, track.path, c, digest, hop_s, batch, f"evaluate-{i}"))
                            for c in conditions]
            except (DecodeError, OSError) as err:
                failed[track.track_id] = str(err) if isinstance(err, DecodeError) else f"cannot read ({err.strerror})"
                bar.update(len(conditions))
                continue
            for c, (probs, content) in analysed:
                bar.update()
                if not len(content):  # under a second: the live path classifies nothing
                    continue
                acc = per_cond[c]
                music = track.label not in NOT_MUSIC or track.label in model.labels
                acc["content"] += content
                acc["truth"] += [MUSIC if music else track.label] * len(content)
                acc["genre"] += [track.label if music else None] * len(content)
                if not music:
                    continue
                # the genre a listener gets: none for a window taken for talk, silence or noise
                acc["end_to_end"].append((probs.argmax(axis=1) == model.labels.index(track.label))
                                         & (np.array(content) == MUSIC))
                acc["probs"].append(probs)
                acc["y"].append(np.full(len(probs), model.labels.index(track.label)))
                acc["groups"].append(np.full(len(probs), i))
    out = {"model": model.name, "data_dir": data_dir, "hop_s": hop_s, "content_folders": sorted(
           {t.label for t in non_music}), "skipped_folders": skipped, "failed_tracks": failed, "conditions": {}}
    for c, acc in per_cond.items():
        if acc["probs"]:
            probs, y, g = (np.concatenate(acc[k]) for k in ("probs", "y", "groups"))
        else:
            probs, y, g = np.zeros((0, len(model.labels))), np.zeros(0, int), np.zeros(0, int)
        out["conditions"][c] = metrics(probs, y, g, model.labels, model.uncertain_threshold)
        out["conditions"][c]["content"] = content_metrics(acc["truth"], acc["content"], acc["genre"])
        e2e = np.concatenate(acc["end_to_end"]) if acc["end_to_end"] else np.zeros(0, bool)
        out["conditions"][c]["window_accuracy_with_content"] = float(e2e.mean()) if len(e2e) else 0.0
    return out
