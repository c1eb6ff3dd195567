"""The Keras 3 musicnn port reproduces the original TF1 network (golden outputs)."""

import numpy as np
import pytest

from server.model import musicnn
from tests.support.golden import load_golden

TOL = 1e-4


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
    got = backbone(golden["inputs"])[output]
    want = golden[f"{backbone.variant}/{output}"]
    assert got.dtype == np.float32 and got.shape == want.shape
    diff = np.abs(got - want).max()
    assert diff < TOL, f"{backbone.variant} {output}: max abs diff {diff:.3g}"


def test_outputs_shapes_and_ranges(backbone, golden):
    out = backbone(golden["inputs"])
    assert out["tags"].shape == (4, 50)
    assert out["embedding"].shape == (4, 200)
    assert out["mean_pool"].shape == out["max_pool"].shape == (4, musicnn.POOL_DIM)
    assert ((out["tags"] >= 0) & (out["tags"] <= 1)).all()
    # max >= mean up to float rounding (constant channels average to max ± 1 ulp)
    assert (out["max_pool"] >= out["mean_pool"] - 1e-5 * (1 + np.abs(out["mean_pool"]))).all()
    # Different sounds must give different tags (catches a port that ignores its input).
    assert np.abs(out["tags"][0] - out["tags"][3]).max() > 1e-3


def test_batch_of_one_equals_row_of_batch(backbone, golden):
    x = golden["inputs"]
    full = backbone(x)
    for i in range(len(x)):
        one = backbone(x[i:i + 1])
        for key in full:
            np.testing.assert_allclose(one[key][0], full[key][i], atol=1e-5, rtol=1e-5)


def test_empty_batch(backbone):
    out = backbone(np.zeros((0, 187, 96), np.float32))
    assert out["tags"].shape == (0, 50) and out["embedding"].shape == (0, 200)
    assert out["tags"].dtype == np.float32


def test_accepts_float64_and_lists(backbone, golden):
    x = golden["inputs"][:1]
    ref = backbone(x)["tags"]
    np.testing.assert_allclose(backbone(x.astype(np.float64))["tags"], ref, atol=1e-6)
    np.testing.assert_allclose(backbone(x.tolist())["tags"], ref, atol=1e-6)


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
