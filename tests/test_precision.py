"""The int8 timbral front-end, and the start-up check that picks it or keeps float32."""

import json
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

from server.config import N_MELS, WINDOW_FRAMES
from server.model import fast, precision, quantized
from server.model.frontend import TimbralFrontEnd
from server.stream.features import log_compress, mel_power
from tests.support.audio import make_music


@pytest.fixture(autouse=True)
def float_afterwards(model):
    yield
    precision.select(model, "float")


@pytest.fixture(scope="module")
def check_outputs(model):
    """The default model's ``(probs, tags, content)`` on the demo check windows, in float and in int8."""
    mel = quantized.check_windows()
    out = []
    for p in ("float", "int8"):
        with fast.precision(p):
            a = model.analyse(mel)
        out.append((a.probs, a.tags, a.content))
    return tuple(out)


def test_the_int8_graph_is_integer_convolutions(model):
    for variant in model.backbones:
        ops = {node.op_type for node in onnx.load(quantized.int8_timbral_path(variant)).graph.node}
        assert "QLinearConv" in ops and "Conv" not in ops, ops


def test_int8_keeps_the_content_of_music_it_was_not_calibrated_on(model, check_outputs):
    for variant in model.backbones:  # each channel's mean rounding error is added back
        names = {node.name for node in onnx.load(quantized.int8_timbral_path(variant)).graph.node}
        assert "bias_correction" in names
    (_, _, c0), (_, _, c1) = check_outputs
    assert np.mean([a == b for a, b in zip(c0, c1)]) >= precision.MIN_AGREEMENT, (c0, c1)


def test_the_check_on_music_int8_was_not_calibrated_on_weighs_every_decision(check_outputs):
    (p0, t0, c0), (p1, t1, c1) = check_outputs
    result = precision.compare((p0, t0, c0), (p1, t1, c1))
    assert result["windows"] >= 50 and set(c0) <= {"music", "speech", "silence", "noise"}
    # It is a different computation, not the float one under another name.
    assert not np.array_equal(t0, t1)
    content = np.mean([a == b for a, b in zip(c0, c1)])
    assert result["content_agreement"] == pytest.approx(content, abs=1e-4)
    assert result["passed"] == (result["decided_agreement"] >= precision.MIN_AGREEMENT
                                and content >= precision.MIN_AGREEMENT
                                and result["max_prob_diff"] <= precision.MAX_PROB_DIFF
                                and result["max_tag_diff"] <= precision.MAX_TAG_DIFF)


def test_compare_fails_what_changes_the_decisions():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.3), 200).astype(np.float32)
    tags = rng.random((200, 50)).astype(np.float32)
    assert precision.compare((probs, tags), (probs, tags))["passed"]
    top2 = np.sort(probs, axis=1)[:, -2:]
    clear = np.flatnonzero(top2[:, 1] - top2[:, 0] > 0.2)
    tied = np.flatnonzero(top2[:, 1] - top2[:, 0] < precision.TIE_MARGIN / 2)
    assert len(clear) >= 50 and len(tied) >= 3

    def flip(rows):  # the top genre of these windows becomes the last
        out = probs.copy()
        out[rows] = out[rows, ::-1]
        return out

    near_ties = precision.compare((probs, tags), (flip(tied[:3]), tags))
    # Near ties don't count against agreement, but reversing a window moves its probabilities too far.
    assert near_ties["agreement"] < 0.99 and near_ties["decided_agreement"] == 1.0 and not near_ties["passed"]
    clear_flips = precision.compare((probs, tags), (flip(clear[:3]), tags))
    assert clear_flips["decided_agreement"] < 0.99 and not clear_flips["passed"]
    swapped = probs.copy()  # near ties reordered by less than the tolerance: passes
    for r in tied[:3]:
        a, b = np.argsort(swapped[r])[-2:]
        swapped[r, a], swapped[r, b] = swapped[r, b], swapped[r, a]
    result = precision.compare((probs, tags), (swapped, tags))
    assert result["agreement"] < 1.0 and result["passed"], result
    nudged = np.clip(tags + precision.MAX_TAG_DIFF * 1.5, 0, 1)
    assert not precision.compare((probs, tags), (probs, nudged))["passed"]
    # Music windows called noise fail it, whatever the genres do.
    content = ["music"] * 200
    noisy = ["noise"] * 3 + ["music"] * 197
    assert precision.compare((probs, tags, content), (probs, tags, content))["passed"]
    moved = precision.compare((probs, tags, content), (probs, tags, noisy))
    assert moved["content_agreement"] == pytest.approx(0.985) and not moved["passed"]


def test_live_frame_reuse_holds_in_int8():
    y = make_music(sr=16000, seconds=8.0, seed=5)
    mel = log_compress(mel_power(y))
    starts = [int(k * 62.5) for k in range(int((mel.shape[0] - WINDOW_FRAMES) / 62.5) + 1)]
    with fast.precision("int8"):
        shared = fast.get_backbone("MSD_musicnn", "fast", threads=1)
    assert shared.precision == "int8"
    front = shared.frontend
    live, fresh = (TimbralFrontEnd((front.scale, front.shift), front.run) for _ in range(2))
    for s in starts:
        window = mel[s:s + WINDOW_FRAMES][None]
        np.testing.assert_allclose(live(window, [("radio", s)]), fresh(window), rtol=0, atol=1e-5)
    assert live.frames_reused > 0


def test_select_float_skips_the_check_and_a_bad_setting_keeps_float(model, monkeypatch):
    assert precision.select(model, "float")["precision"] == "float"
    assert fast.current_precision() == "float"
    monkeypatch.setenv("GENRE_MONITOR_PRECISION", "fp16")
    chosen = precision.select(model)
    assert chosen["precision"] == "float" and "fp16" in chosen["reason"]
    assert isinstance(fast.get_backbone(model.backbones[0]), fast.FastBackbone)
    assert fast.get_backbone(model.backbones[0]).precision == "float"


def test_auto_uses_int8_where_the_check_passes_and_remembers_the_verdict(model, check_outputs):
    verdict = Path(precision.verdict_path(model))
    verdict.unlink(missing_ok=True)
    chosen = precision.select(model, "auto")
    passed = precision.compare(*check_outputs)["passed"]
    assert chosen["precision"] == ("int8" if passed else "float")
    # Paced in chunks, the same windows: the same verdict (the last digits may differ with batch size).
    whole = precision.compare(*check_outputs)
    assert chosen["check"]["windows"] == whole["windows"] and chosen["check"]["passed"] == whole["passed"]
    assert fast.get_backbone(model.backbones[0]).precision == chosen["precision"]
    # Another load of the same backbones keeps the result without checking again,
    assert precision.select(model, "auto") == chosen
    # and a later start on this machine reads the verdict instead of predicting again.
    assert json.loads(verdict.read_text()) == chosen["check"]
    precision.select(model, "float")
    again = precision.select(model, "auto")
    assert again["check"] == chosen["check"] and "earlier" in again["reason"]


def test_a_precision_for_one_context_leaves_other_threads_theirs(model):
    seen = {}

    def other():
        seen["other"] = fast.current_precision()

    with fast.precision("int8"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        seen["here"] = fast.current_precision()
        # The backbone pool runs each call in the caller's context.
        probs, _ = model.predict(np.zeros((1, WINDOW_FRAMES, N_MELS), np.float32))
    assert seen == {"other": "float", "here": "int8"} and probs.shape == (1, len(model.labels))
    with pytest.raises(fast.BackendError):
        with fast.precision("fp16"):
            pass


def test_the_engine_runs_the_check_after_loading_and_says_what_it_chose(monkeypatch, tmp_path, check_outputs):
    from server.engine import Engine
    from server.web.app import create_app

    monkeypatch.setenv("GENRE_MONITOR_PRECISION", "auto")
    engine = Engine()
    try:
        engine.load_model(None)  # synchronous: the model, then the check
        app, _ = create_app(engine, upload_dir=str(tmp_path))
        shown = app.test_client().get("/api/models").get_json()
        want = "int8" if precision.compare(*check_outputs)["passed"] else "float"
        assert shown["ready"] and shown["precision"]["precision"] == want, shown
        assert shown["precision"]["mode"] == "auto" and shown["precision"]["check"]["windows"] >= 50
        assert engine.status()["model"]["precision"] == shown["precision"]
    finally:
        engine.shutdown()
