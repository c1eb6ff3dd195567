"""Training: listing, splits, augmentation, cache, grouped CV, heads, small CNN (tiny synthetic data)."""

import os
import shutil

import numpy as np
import pytest

from server.stream.features import window_mel
from server.model.head_forward import dense_forward, pairwise_coupling, rbf_map
from server.model.level import normalize_level
from server.training import augment
from server.stream.features import window_mels
from server.training.dataset import DatasetError, filter_split, list_tracks, read_split
from server.training.embeddings import track_outputs
from server.training.head import calibrate_threshold, cross_validate, fit_head, grouped_folds
from tests.support.training import make_collection


def test_list_tracks_and_split_file(tmp_path):
    make_collection(str(tmp_path / "d"), per_genre=2, seconds=1.0, fmt="flac")
    tracks = list_tracks(str(tmp_path / "d"))
    assert [t.track_id for t in tracks][:2] == ["chirp/chirp.00000", "chirp/chirp.00001"]
    split = tmp_path / "train.txt"
    split.write_text("chirp/chirp.00001.wav\ndrone/drone.00000.wav\n")  # GTZAN lists say .wav
    assert read_split(str(split)) == {"chirp/chirp.00001", "drone/drone.00000"}
    assert [t.track_id for t in filter_split(tracks, [str(split)])] == ["chirp/chirp.00001", "drone/drone.00000"]
    with pytest.raises(DatasetError, match="No audio files"):
        list_tracks(str(tmp_path))


def test_grouped_folds_never_leak_a_track():
    rng = np.random.default_rng(0)
    track_labels = np.repeat(np.arange(4), 5)
    outputs = {"clean": [{"x/embedding": rng.standard_normal((7, 3)).astype(np.float32)} for _ in track_labels]}
    for seed in range(3):
        folds = grouped_folds(track_labels, 5, seed)
        seen = np.concatenate([test for _, test in folds])
        assert sorted(seen) == list(range(len(track_labels)))  # every track held out exactly once
        for train, test in folds:
            assert not set(train) & set(test)
    held = cross_validate(outputs, track_labels, 4, [(["x/embedding"], {"kind": "logreg", "C": 1.0})],
                          n_splits=5, repeats=2)["clean"]
    assert len(held["y"]) == 2 * 7 * len(track_labels)  # every window of every track, once per repeat


def test_head_fits_random_separable_features():
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((3, 20)) * 3
    y = rng.integers(0, 3, 300)
    X = (centers[y] + rng.standard_normal((300, 20))).astype(np.float32)
    for spec in ({"kind": "logreg", "C": 1.0}, {"kind": "mlp", "hidden": 16, "alpha": 1e-3},
                 {"kind": "kernel", "centers": 50, "C": 1.0}, {"kind": "svm", "C": 1.0}):
        w = fit_head(X, y, 4, spec)  # label 3 never seen: still a column, near-zero probability
        probs = dense_forward(X, w)
        assert probs.shape == (300, 4)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert np.mean(probs.argmax(1) == y) > 0.9
        assert probs[:, 3].max() < 1e-3


def test_pairwise_coupling_recovers_consistent_probabilities():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(4), size=6)
    pairs = np.array([(i, j) for i in range(4) for j in range(i + 1, 4)])
    r = p[:, pairs[:, 0]] / (p[:, pairs[:, 0]] + p[:, pairs[:, 1]])
    np.testing.assert_allclose(pairwise_coupling(r, pairs, 5)[:, :4], p, atol=1e-5)
    assert not pairwise_coupling(r, pairs, 5)[:, 4].any()  # a label in no pair


def test_svm_head_exports_the_svms_own_decisions():
    """The exported centres and dense layer give sklearn's one-vs-one decisions, for 2 and 3 labels."""
    from sklearn.svm import SVC

    rng = np.random.default_rng(3)
    for n_labels in (2, 3):
        y = rng.integers(0, n_labels, 120)
        X = rng.standard_normal((120, 5)) + np.eye(5)[y] * 1.5
        w = fit_head(X, y, n_labels, {"kind": "svm", "C": 2.0})
        Z = (X - w["mean"]) / w["scale"]
        svc = SVC(C=2.0, gamma=1 / 5, decision_function_shape="ovo").fit(Z, y)
        ours = rbf_map(Z.astype(np.float32), w["centers"], float(w["gamma"])) @ w["W0"] + w["b0"]
        np.testing.assert_allclose(ours, svc.decision_function(Z).reshape(120, -1), atol=1e-3)
        probs = dense_forward(X.astype(np.float32), w)
        assert np.mean(probs.argmax(1) == svc.predict(Z)) > 0.95


def test_calibrated_threshold_separates_wrong_from_right():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.55, 0.45], [0.52, 0.48], [0.3, 0.7]])
    y = np.array([0, 0, 1, 1, 1])
    t = calibrate_threshold(probs, y)
    assert 0.55 < t <= 0.7  # the two low-confidence windows are wrong, the rest right


def test_augmentations_are_seeded_and_sized():
    sr = 22050
    y = np.sin(2 * np.pi * 440 * np.arange(sr * 4) / sr).astype(np.float32) * 0.5
    for c in augment.EVAL_CONDITIONS + ("rand0", "rand7", "mic0"):
        y16, offset = augment.apply(y, sr, c, "abc", hop_s=1.0)
        # Clipped at the capture rate; resampling a clipped signal to 16 kHz may ring a little past it.
        assert abs(len(y16) - 64000) <= 2 and np.isfinite(y16).all() and np.abs(y16).max() <= 1.05
        np.testing.assert_array_equal(y16, augment.apply(y, sr, c, "abc", hop_s=1.0)[0])
        assert 0.0 <= offset < 1.0
    quiet, _ = augment.apply(y, sr, "gain-12", "abc")
    clean, _ = augment.apply(y, sr, "clean", "abc")
    assert 20 * np.log10(np.std(quiet) / np.std(clean)) == pytest.approx(-12.0, abs=0.1)
    with pytest.raises(augment.UnknownCondition):
        augment.apply(y, sr, "underwater", "abc")


def test_level_normalisation_makes_mel_level_invariant():
    rng = np.random.default_rng(2)
    y = (rng.standard_normal(48128) * 0.1).astype(np.float32)
    a = normalize_level(np.stack([window_mel(y)]))
    b = normalize_level(np.stack([window_mel(y * 0.25)]))  # −12 dB
    np.testing.assert_allclose(a, b, atol=2e-3)
    silence = normalize_level(np.zeros((1, 187, 96), np.float32))
    assert np.all(silence == 0)


def test_windows_like_live_path():
    y = np.random.default_rng(3).standard_normal(16000 * 5).astype(np.float32)
    mels = window_mels(y, hop_s=1.0)
    assert mels.shape == (2, 187, 96)
    np.testing.assert_array_equal(mels[1], window_mel(y[16000:16000 + 48128]))


def test_cache_hit_on_second_run_by_content(tmp_path):
    make_collection(str(tmp_path / "d"), genres=("drone",), per_genre=1, seconds=3.5)
    track = list_tracks(str(tmp_path / "d"))[0]
    stats = {}
    first = track_outputs(track, "clean", hop_s=3.0, cache_dir=str(tmp_path / "c"), stats=stats)
    assert stats == {"misses": 1}
    moved = tmp_path / "e" / "other"
    moved.mkdir(parents=True)
    shutil.copy(track.path, moved / "renamed.wav")
    second = track_outputs(list_tracks(str(tmp_path / "e"))[0], "clean", hop_s=3.0,
                           cache_dir=str(tmp_path / "c"), stats=stats)
    assert stats == {"misses": 1, "hits": 1}
    assert set(first) >= {"MSD_musicnn/embedding", "MTT_musicnn/tags"}
    np.testing.assert_array_equal(first["MSD_musicnn/embedding"], second["MSD_musicnn/embedding"])
    track_outputs(track, "gain-6", hop_s=3.0, cache_dir=str(tmp_path / "c"), stats=stats)
    assert stats["misses"] == 2  # another condition is another entry


def test_small_cnn_trains_one_epoch(tmp_path):
    from server.model.registry import load_model
    from server.training.small_cnn import train_small_cnn

    data = make_collection(str(tmp_path / "d"), per_genre=3, seconds=4.0)
    out = str(tmp_path / "cnn")
    meta = train_small_cnn(data, out, n_augment=0, epochs=1, hop_s=1.0, progress=False, log=lambda m: None)
    assert meta["arch"] == "small-cnn" and os.path.exists(os.path.join(out, "model.keras"))
    model = load_model(out)
    probs, tags = model.predict(np.zeros((2, 187, 96), np.float32))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert tags.shape == (2, 0)
