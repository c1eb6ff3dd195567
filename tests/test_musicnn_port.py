"""The Keras 3 musicnn port reproduces the original TF1 network (golden outputs)."""

import numpy as np
import pytest

from server.model import musicnn
from tests.support.golden import assert_matches_golden, load_golden
from tests.support.tolerance import EPS32, K, assert_f32_close, assert_outputs_close, output_tol


@pytest.fixture(scope="module")
def golden():
    return load_golden()


@pytest.fixture(scope="module", params=musicnn.VARIANTS)
def backbone(request):
    return musicnn.get_backbone(request.param)


def test_golden_inputs_look_like_log_mels(golden):
    x = golden["inputs"]
    assert x.dtype == np.float32 and x.shape == (4, 187, 96)
    assert np.isfinite(x).all() and x.min() >= 0


@pytest.mark.parametrize("output", ["tags", "embedding", "mean_pool", "max_pool"])
def test_matches_original_network(backbone, golden, output):
    assert_matches_golden(backbone(golden["inputs"]), golden, backbone.variant, keys=[output])


@pytest.fixture(scope="module")
def spare():
    """A backbone of its own, not the shared cached one, to perturb."""
    return musicnn.MusicnnBackbone("MSD_musicnn")


@pytest.mark.parametrize("layer, index, change", [
    ("conv2d", 0, lambda w: w * 1.001),  # a timbral kernel 0.1 % too large
    ("conv2d_7", 0, lambda w: w * 1.001),  # the last mid-end kernel
    ("dense_1", 1, lambda w: w + 1e-3),  # the tag biases (only the tags see it)
], ids=["timbral-kernel", "midend-kernel", "tag-bias"])
def test_golden_comparison_catches_a_wrong_weight(spare, golden, layer, index, change):
    """The float32 tolerances are loose enough for any kernels, not for a port that is wrong."""
    x = golden["inputs"]
    target = spare.model.get_layer(layer)
    original = target.get_weights()
    weights = [w.copy() for w in original]
    weights[index] = change(weights[index]).astype(np.float32)
    target.set_weights(weights)
    try:
        with pytest.raises(AssertionError, match="max abs diff"):
            assert_matches_golden(spare(x), golden, spare.variant)
    finally:
        target.set_weights(original)
    assert_matches_golden(spare(x), golden, spare.variant)
    assert musicnn.get_backbone(spare.variant) is not spare


def test_outputs_shapes_and_ranges(backbone, golden):
    out = backbone(golden["inputs"])
    assert out["tags"].shape == (4, 50)
    assert out["embedding"].shape == (4, 200)
    assert out["mean_pool"].shape == out["max_pool"].shape == (4, musicnn.POOL_DIM)
    assert ((out["tags"] >= 0) & (out["tags"] <= 1)).all()
    # max >= mean up to the float32 error of a mean of 187 frames (a constant channel averages to max ± ulps)
    slack = K * EPS32 * np.sqrt(musicnn.N_FRAMES) * np.abs(out["max_pool"])
    assert (out["max_pool"] >= out["mean_pool"] - slack).all()
    # Different sounds must give different tags (catches a port that ignores its input).
    assert np.abs(out["tags"][0] - out["tags"][3]).max() > 1e-3


def test_batch_of_one_equals_row_of_batch(backbone, golden):
    x = golden["inputs"]
    full = backbone(x)
    for i in range(len(x)):  # oneDNN picks other kernels for another batch size
        one = backbone(x[i:i + 1])
        assert_outputs_close({k: v[0] for k, v in one.items()}, {k: v[i] for k, v in full.items()},
                             what=f"{backbone.variant} row {i}")


def test_empty_batch(backbone):
    out = backbone(np.zeros((0, 187, 96), np.float32))
    assert out["tags"].shape == (0, 50) and out["embedding"].shape == (0, 200)
    assert out["tags"].dtype == np.float32


def test_accepts_float64_and_lists(backbone, golden):
    x = golden["inputs"][:1]
    ref = backbone(x)["tags"]
    assert_f32_close(backbone(x.astype(np.float64))["tags"], ref, output_tol("tags", ref), "float64 input")
    assert_f32_close(backbone(x.tolist())["tags"], ref, output_tol("tags", ref), "list input")


@pytest.mark.parametrize("shape", [(187, 96), (1, 186, 96), (1, 187, 128), (2, 3)])
def test_bad_shape_is_a_clear_error(backbone, shape):
    with pytest.raises(musicnn.MusicnnInputError, match="187, 96"):
        backbone(np.zeros(shape, np.float32))


def test_non_finite_input_is_a_clear_error(backbone):
    x = np.zeros((1, 187, 96), np.float32)
    x[0, 5, 5] = np.nan
    with pytest.raises(musicnn.MusicnnInputError, match="NaN"):
        backbone(x)


def test_tag_names_and_cache(backbone):
    names = musicnn.tag_names(backbone.variant)
    assert len(names) == 50 and backbone.tag_names == names
    assert ("rock" in names) if backbone.variant.startswith("MSD") else ("guitar" in names)
    assert musicnn.get_backbone(backbone.variant) is backbone


def test_unknown_variant():
    with pytest.raises(musicnn.MusicnnError, match="MSD_musicnn"):
        musicnn.get_backbone("MSD_vgg")
