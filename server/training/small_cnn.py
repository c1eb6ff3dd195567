"""``--arch small-cnn``: a small CNN trained from scratch on log-mel windows (Keras 3).

For users with a large labelled collection. Two conv blocks (32 and 128 channels,
3×3, max-pooling), 20 % dropout, global average pooling, a 512-unit dense layer and
a softmax; early stopping on a validation set of held-out tracks.
"""

from __future__ import annotations

import datetime
import os

import numpy as np

from ..config import N_MELS, WINDOW_FRAMES
from .dataset import file_hash, filter_split, list_tracks
from .evaluate import metrics
from .head import calibrate_threshold, grouped_folds
from .track_stream import condition_windows
from .train import label_index, save_confusion_png
from ..model.model_format import FORMAT, format_version
from ..model.level import normalize_level


def build(n_labels: int):
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input(shape=(WINDOW_FRAMES, N_MELS, 1)),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(128, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.2),
        layers.GlobalAveragePooling2D(),
        layers.Dense(512, activation="relu"),
        layers.Dense(n_labels, activation="softmax"),
    ], name="small_cnn")


def _mels(tracks, conditions, hop_s, progress):
    from tqdm import tqdm

    xs, ts = [], []
    for i, track in enumerate(tqdm(tracks, desc="log-mel", unit="track", disable=not progress)):
        digest = file_hash(track.path)
        for c in conditions:  # each track read as a stream (the training set itself is held in memory)
            m = normalize_level(np.concatenate(list(condition_windows(track.path, c, digest, hop_s))))
            xs.append(m)
            ts.append(np.full(len(m), i))
    return np.concatenate(xs)[..., None], np.concatenate(ts)


def train_small_cnn(data_dir: str, out_dir: str, *, split_files=None, n_augment: int = 2, epochs: int = 50,
                    batch_size: int = 32, patience: int = 5, hop_s: float = 3.0, progress: bool = True,
                    name: str | None = None, seed: int = 0, log=print) -> dict:
    """Train, validate on held-out tracks, save ``model.keras`` + ``model.json``."""
    import json

    import keras

    keras.utils.set_random_seed(seed)
    tracks = filter_split(list_tracks(data_dir), split_files)
    labels, track_labels = label_index(tracks)
    train_idx, val_idx = grouped_folds(track_labels, 5, seed)[0]
    conditions = ("clean",) + tuple(f"rand{k}" for k in range(n_augment))
    x_tr, t_tr = _mels([tracks[i] for i in train_idx], conditions, hop_s, progress)
    x_va, t_va = _mels([tracks[i] for i in val_idx], ("clean",), hop_s, progress)
    y_tr, y_va = track_labels[train_idx][t_tr], track_labels[val_idx][t_va]

    model = build(len(labels))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    model.fit(x_tr, y_tr, validation_data=(x_va, y_va), epochs=epochs, batch_size=batch_size,
              callbacks=[stop], verbose=1 if progress else 0)
    probs = np.asarray(model.predict(x_va, verbose=0), np.float32)
    threshold = round(calibrate_threshold(probs, y_va), 3)
    val = metrics(probs, y_va, t_va, labels, threshold)
    log(f"validation (held-out tracks): window accuracy {val['window_accuracy']:.3f}, "
        f"track accuracy {val['track_accuracy']:.3f}")

    os.makedirs(out_dir, exist_ok=True)
    model.save(os.path.join(out_dir, "model.keras"))
    name = name or os.path.basename(os.path.normpath(out_dir))
    meta = {
        "format": FORMAT, "version": format_version({"kind": "small-cnn"}), "name": name, "arch": "small-cnn",
        "description": f"small CNN from scratch on log-mel windows, {len(tracks)} tracks",
        "labels": labels, "uncertain_threshold": threshold, "weights": "model.keras",
        "features": {"level_norm": True, "input": "log-mel (187, 96) windows"},
        "metrics": {k: val[k] for k in ("window_accuracy", "track_accuracy", "macro_f1", "uncertain_rate")},
        "validation": {"held_out_tracks": int(len(val_idx)), "conditions": {"clean": val}},
        "training_data": {"folder": os.path.abspath(data_dir), "n_tracks": len(tracks),
                          "n_windows": int(len(y_tr)), "train_conditions": list(conditions)},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with open(os.path.join(out_dir, "model.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    save_confusion_png(val["confusion"], labels, os.path.join(out_dir, "confusion.png"),
                       f"{name}: held-out validation tracks")
    return meta
