"""The fast backends (TFLite/LiteRT; numpy front-end + LiteRT) agree with the Keras port and the original."""

import os

import numpy as np
import pytest

from server.model import fast, graph_cache, musicnn
from tests.support.golden import assert_matches_golden, load_golden
from tests.support.tolerance import (DECISION_TOL, assert_f32_close, assert_outputs_close, assert_same_ranking,
                                     output_tol)


@pytest.fixture(scope="module")
def golden():
    return load_golden()


@pytest.fixture(scope="module", params=[(v, b) for v in musicnn.VARIANTS for b in ("tflite", "fast")],
                ids=lambda p: "-".join(p))
def pair(request):
    variant, backend = request.param
    return fast.get_backbone(variant, backend), musicnn.get_backbone(variant)


@pytest.mark.parametrize("output", ["tags", "embedding", "mean_pool", "max_pool"])
def test_matches_keras_port_and_original(pair, golden, output):
    lite, keras_port = pair
    x = golden["inputs"]
    out = lite(x)
    want = keras_port(x)[output]
    assert out[output].dtype == np.float32
    assert_f32_close(out[output], want, output_tol(output, want), f"{lite.variant} {output} vs the Keras port")
    assert_matches_golden(out, golden, lite.variant, keys=[output])


def test_batches_of_any_size(pair, golden):
    lite, _ = pair
    x = golden["inputs"]
    full = lite(x)
    one = lite(x[:1])
    assert_outputs_close({k: v[0] for k, v in one.items()}, {k: v[0] for k, v in full.items()},
                         what=f"{lite.variant} batch of one")
    assert lite(np.zeros((0, 187, 96), np.float32))["tags"].shape == (0, 50)
    assert lite(np.repeat(x, 3, axis=0))["embedding"].shape == (12, 200)


def test_bad_input_is_a_clear_error(pair):
    lite, _ = pair
    with pytest.raises(musicnn.MusicnnInputError, match="187, 96"):
        lite(np.zeros((187, 96), np.float32))
    x = np.zeros((1, 187, 96), np.float32)
    x[0, 1, 1] = np.inf
    with pytest.raises(musicnn.MusicnnInputError, match="NaN"):
        lite(x)


def test_graph_is_cached_on_disk_and_keyed_by_variant():
    paths = {v: graph_cache.cache_path(v) for v in musicnn.VARIANTS}
    assert len(set(paths.values())) == 2
    for variant, path in paths.items():
        assert graph_cache.tflite_model(variant) == path and os.path.getsize(path) > 1_000_000
        assert path.startswith(graph_cache.cache_dir())


def test_backend_choice(monkeypatch):
    monkeypatch.setenv("GENRE_MONITOR_BACKEND", "keras")
    assert fast.get_backbone("MSD_musicnn") is musicnn.get_backbone("MSD_musicnn")
    monkeypatch.setenv("GENRE_MONITOR_BACKEND", "tflite")
    assert isinstance(fast.get_backbone("MSD_musicnn"), fast.TFLiteBackbone)
    monkeypatch.setenv("GENRE_MONITOR_BACKEND", "fast")
    assert isinstance(fast.get_backbone("MSD_musicnn"), fast.FastBackbone)
    monkeypatch.delenv("GENRE_MONITOR_BACKEND")
    assert isinstance(fast.get_backbone("MSD_musicnn"), fast.FastBackbone)  # the default
    monkeypatch.setenv("GENRE_MONITOR_BACKEND", "cuda")
    with pytest.raises(fast.BackendError, match="keras, tflite, fast"):
        fast.get_backbone("MSD_musicnn")
    monkeypatch.setenv("GENRE_MONITOR_BACKEND", "tflite")
    monkeypatch.setenv("GENRE_MONITOR_THREADS", "zero")
    with pytest.raises(fast.BackendError, match="whole number"):
        fast.default_threads()


def test_genre_model_same_on_both_backends(golden, monkeypatch):
    from server.model.registry import load_model

    model = load_model(None)
    x = golden["inputs"]
    monkeypatch.setenv("GENRE_MONITOR_BACKEND", "keras")
    probs_k, tags_k = model.predict(x)
    monkeypatch.setenv("GENRE_MONITOR_BACKEND", "tflite")
    probs_t, tags_t = model.predict(x)
    assert_f32_close(probs_t, probs_k, DECISION_TOL, "genre probabilities")
    assert_same_ranking(probs_t, probs_k, 1, DECISION_TOL, "genre")
    assert_f32_close(tags_t, tags_k, output_tol("tags", tags_k), "tags")
