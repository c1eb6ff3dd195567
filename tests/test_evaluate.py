"""Evaluation: metrics by hand, and the train → evaluate round trip through the CLI."""

import json
import os
import shutil

import numpy as np

from server.cli import build_parser
from server.training.evaluate import metrics
from tests.support.training import GENRES, make_collection, trained_model


def test_metrics_by_hand():
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.45, 0.55]])
    y = np.array([0, 0, 1, 1])
    groups = np.array([0, 0, 1, 1])
    m = metrics(probs, y, groups, ["a", "b"], threshold=0.6)
    assert m["window_accuracy"] == 0.75
    assert m["track_accuracy"] == 1.0  # track 0: mean (0.6, 0.4) → a
    assert m["confusion"] == [[1, 0], [0, 1]]
    assert m["window_confusion"] == [[1, 1], [0, 2]]
    assert m["uncertain_rate"] == 0.25
    assert m["macro_f1"] == 1.0
    assert m["per_genre_recall"] == {"a": 1.0, "b": 1.0}


def test_train_evaluate_round_trip_json(tmp_path, capsys):
    model_dir, _, _ = trained_model()
    with open(os.path.join(model_dir, "model.json")) as f:
        meta = json.load(f)
    assert meta["labels"] == list(GENRES) and os.path.exists(os.path.join(model_dir, "confusion.png"))
    # Unseen synthetic tracks (other seed) plus a folder the model does not know.
    data = make_collection(str(tmp_path / "eval"), per_genre=2, seed=7)
    make_collection(str(tmp_path / "eval"), genres=("polka",), per_genre=1, seconds=4.0)
    capsys.readouterr()
    args = build_parser().parse_args(["evaluate", data, "--model", model_dir, "--json", "--hop", "1"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("track_accuracy", "window_accuracy", "macro_f1", "n_tracks", "n_windows", "labels",
                "confusion", "uncertain_rate", "per_genre_recall"):
        assert key in report
    assert report["skipped_folders"] == {"polka": 1}
    assert report["n_tracks"] == 6 and report["n_windows"] == 18
    assert report["track_accuracy"] > 1 / 3 + 0.2 and report["window_accuracy"] > 1 / 3 + 0.2


def test_evaluate_reports_bad_folder(tmp_path, capsys):
    args = build_parser().parse_args(["evaluate", str(tmp_path / "missing"), "--model", "zeroshot", "--quiet"])
    assert args.func(args) == 2
    assert "not found" in capsys.readouterr().err


def test_evaluate_unknown_model(tmp_path, capsys):
    data = make_collection(str(tmp_path / "d"), per_genre=1, seconds=1.0)
    args = build_parser().parse_args(["evaluate", data, "--model", "no-such-model"])
    assert args.func(args) == 2
    assert "No model named 'no-such-model'" in capsys.readouterr().err
    shutil.rmtree(data)


def test_live_condition_runs_the_live_path(tmp_path):
    """`evaluate --live-sim` also scores the windows the live path itself makes (hop 1 s)."""
    from server.model.heads import load_directory
    from server.training.augment import LIVE_CONDITION
    from server.training.evaluate import evaluate_collection

    model_dir, _, _ = trained_model()
    data = make_collection(str(tmp_path / "eval"), per_genre=1, seconds=8.0, seed=3)
    res = evaluate_collection(load_directory(model_dir), data, conditions=("clean", LIVE_CONDITION),
                              hop_s=1.0, progress=False)
    clean, live = res["conditions"]["clean"], res["conditions"][LIVE_CONDITION]
    assert live["n_tracks"] == clean["n_tracks"] == len(GENRES)
    # One window per second from the first second on, as on the dashboard: the live path adds
    # the three windows (1, 2, 3 s) that end before a full window has arrived.
    assert abs(live["n_windows"] - clean["n_windows"] - 3 * len(GENRES)) <= len(GENRES)
    assert 0.0 <= live["window_accuracy"] <= 1.0 and len(live["confusion"]) == len(GENRES)


def test_ensemble_head_trains_saves_and_predicts_as_its_members(tmp_path):
    """An ensemble candidate (logistic regression + kernel + SVM heads) round-trips through model.json/weights.npz,
    and the loaded model's probabilities are the mean of its members' on the same backbone outputs."""
    from server.audio.resample import resample
    from server.stream.features import fill_silence
    from server.model.head_forward import dense_forward
    from server.model.genre_model import backbone_features
    from server.model.heads import load_directory
    from server.model.level import normalize_level
    from server.stream.features import window_mels
    from server.training.dataset import list_tracks, load_audio
    from server.training.train import train_head

    _, data, cache = trained_model()
    spec = {"kind": "ensemble", "members": [("emb", {"kind": "logreg", "C": 1.0}),
                                            ("mean-pools", {"kind": "kernel", "centers": 40, "C": 1.0}),
                                            ("emb", {"kind": "svm", "C": 1.0})]}
    out = str(tmp_path / "ens")
    meta = train_head(data, out, n_augment=0, grid=[("ensemble", spec)], n_splits=3, repeats=1, hop_s=1.0,
                      cache_dir=cache, progress=False, log=lambda *a: None)
    assert meta["head"]["kind"] == "ensemble" and meta["version"] == 3  # SVM heads need format 3
    assert [m["spec"]["kind"] for m in meta["head"]["members"]] == ["logreg", "kernel", "svm"]
    model = load_directory(out)
    assert len(model.members) == 3 and "centers" in model.members[1][1] and "pairs" in model.members[2][1]

    unseen = make_collection(str(tmp_path / "eval"), per_genre=1, seconds=4.0, seed=5)
    mels = np.concatenate([window_mels(resample(*load_audio(t.path), 16000), 1.0) for t in list_tracks(unseen)])
    probs, _ = model.predict(mels)
    outputs = backbone_features(normalize_level(fill_silence(mels)), model.backbones, level_norm=False)
    parts = [dense_forward(np.concatenate([outputs[k] for k in keys], axis=1), w) for keys, w in model.members]
    np.testing.assert_allclose(probs, np.mean(parts, axis=0), atol=1e-5)
    assert not np.allclose(parts[0], parts[1], atol=1e-2)  # different heads, really averaged
    assert not np.allclose(parts[0], parts[2], atol=1e-2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
