"""Registry: installed models, the zero-shot fallback, the GenreModel contract."""

import json
import os
import shutil

import numpy as np
import pytest

from server.model.genre_model import ModelError

from server.model.tag_features import GENRE_TAGS
from server.model.registry import MODELS_DIR, ModelNotFound, list_models, load_model
from tests.support.training import trained_model


def _check_contract(model):
    rng = np.random.default_rng(0)
    mel = rng.uniform(0, 3, (3, 187, 96)).astype(np.float32)
    probs, tags = model.predict(mel)
    assert probs.shape == (3, len(model.labels)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert tags.shape == (3, len(model.tag_names))
    empty_p, empty_t = model.predict(np.zeros((0, 187, 96), np.float32))
    assert empty_p.shape == (0, len(model.labels)) and empty_t.shape == (0, len(model.tag_names))
    assert isinstance(model.is_uncertain(probs[0]), bool)
    with pytest.raises(ValueError):
        model.predict(np.zeros((187, 96), np.float32))


def test_zeroshot_model_contract():
    model = load_model("zeroshot")
    assert model.name == "zeroshot" and "reggae" not in model.labels and "electronic" in model.labels
    assert len(model.labels) == 10  # GTZAN's ten less reggae (no tag names it), and electronic
    assert not {t.lower() for t in model.tag_names} & GENRE_TAGS
    assert len(set(model.tag_names)) == len(model.tag_names) and "piano" in model.tag_names
    _check_contract(model)


def test_default_falls_back_to_zeroshot(tmp_path):
    assert load_model(None, models_dir=str(tmp_path)).name == "zeroshot"
    assert [m["name"] for m in list_models(str(tmp_path))] == ["zeroshot"]


def test_installed_model_by_name_and_path(tmp_path):
    model_dir, _, _ = trained_model()
    shutil.copytree(model_dir, tmp_path / "default")
    names = [m["name"] for m in list_models(str(tmp_path))]
    assert names == ["default", "zeroshot"]
    model = load_model(None, models_dir=str(tmp_path))
    assert model.name == "model" and model.labels == ["chirp", "clicks", "drone"]
    _check_contract(model)
    assert load_model(model_dir).labels == model.labels
    with pytest.raises(ModelNotFound, match="Installed models: default, zeroshot"):
        load_model("nope", models_dir=str(tmp_path))


def test_damaged_model_is_a_clear_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelError, match="unknown model format"):
        load_model(str(tmp_path / "bad"))


def test_every_head_kind_written_is_read_and_a_newer_format_refused(tmp_path):
    from server.model.head_forward import KIND_VERSION
    from server.model.model_format import FORMAT, format_version, read_model_json

    head = {"kind": "ensemble", "members": [{"spec": {"kind": k}} for k in KIND_VERSION],
            "prior": {"kind": "zeroshot", "weight": 0.5}}
    newest = format_version(head)
    (tmp_path / "model.json").write_text(json.dumps({"format": FORMAT, "version": newest}))
    assert read_model_json(str(tmp_path))["version"] == newest
    (tmp_path / "model.json").write_text(json.dumps({"format": FORMAT, "version": newest + 1}))
    with pytest.raises(ModelError, match="unknown model format"):
        read_model_json(str(tmp_path))


@pytest.mark.skipif(not os.path.exists(os.path.join(MODELS_DIR, "default", "model.json")),
                    reason="no shipped default model")
def test_shipped_default_model():
    model = load_model()
    assert model.name == "default" and model.uncertain_threshold is not None
    assert {"electronic", "classical", "pop", "rock", "reggae"} <= set(model.labels)
    _check_contract(model)
