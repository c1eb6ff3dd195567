"""A model whose genres are not GTZAN's ten: rules naming genres it lacks, saved settings,
a model switch in the history and exports, and `classify`/`evaluate` (real model, SQLite, Flask)."""

import csv
import io
import json

import numpy as np
import pytest

from server.cli import build_parser
from server.config import GTZAN_GENRES, N_MELS, WINDOW_FRAMES
from server.engine import Engine
from server.model.registry import list_models, load_model
from server.settings import Settings
from server.sinks.history import open_store
from server.web.app import create_app
from tests.support.models import OTHER_LABELS, relabelled_model
from tests.support.sinks import Collector
from tests.support.training import make_collection
from tests.support.wait import wait_until

# A rule as an older release saved it: GTZAN genres the other model lacks.
GTZAN_RULE = {"type": "unexpected_genre", "expected": ["reggae", "disco"], "for": 2.0}


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory):
    return relabelled_model(tmp_path_factory.mktemp("models") / "other")


@pytest.fixture(scope="module")
def other_model(other_dir):
    m = load_model(other_dir)
    m.predict(np.zeros((1, WINDOW_FRAMES, N_MELS), np.float32))
    return m


def test_the_other_model_is_listed_and_predicts_its_own_labels(other_dir, other_model):
    assert set(OTHER_LABELS) != set(GTZAN_GENRES) and len(OTHER_LABELS) != len(GTZAN_GENRES)
    listed = {m["name"]: m for m in list_models(str(other_dir.rsplit("/", 1)[0]))}
    assert listed["other"]["labels"] == list(OTHER_LABELS)
    probs, _ = other_model.predict(np.zeros((2, WINDOW_FRAMES, N_MELS), np.float32))
    assert other_model.labels == list(OTHER_LABELS) and probs.shape == (2, len(OTHER_LABELS))


def test_rules_naming_genres_the_model_lacks_are_kept_returned_and_saved(tmp_path, other_model, song):
    settings = Settings(tmp_path / "settings.json")
    engine = Engine(settings=settings)
    engine.use_model(other_model)
    app, socketio = create_app(engine, upload_dir=str(tmp_path / "uploads"))
    client = app.test_client()
    sid = engine.start_source({"kind": "file", "path": song, "id": "radio", "loop": True})
    try:
        res = client.put(f"/api/sources/{sid}/rules", json={"rules": [GTZAN_RULE, {"type": "silence", "for": 5}]})
        assert res.status_code == 200, res.json
        assert res.json["rules"][0]["expected"] == ["reggae", "disco"]
        assert res.json["missing_genres"] == ["reggae", "disco"]
        got = client.get(f"/api/sources/{sid}/rules").json
        assert got["rules"] == res.json["rules"] and got["missing_genres"] == ["reggae", "disco"]

        sc = socketio.test_client(app)
        ack = sc.emit("set_rules", {"source": sid, "rules": [{**GTZAN_RULE, "expected": ["jazz", "polka"]}]},
                      callback=True)
        sc.disconnect()
        assert ack["ok"] is True and ack["rules"][0]["expected"] == ["jazz", "polka"], ack
        assert ack["missing_genres"] == ["polka"]
    finally:
        engine.shutdown()
    # Kept in the file, and a restart loads it as it is.
    again = Settings(tmp_path / "settings.json")
    assert again.problems == [] and again["rules"][sid][0]["expected"] == ["jazz", "polka"]
    assert not (tmp_path / "settings.json.bad").exists()


def test_a_model_switch_keeps_the_settings_that_still_apply_and_names_the_rules_it_cannot_honour(
        tmp_path, model, other_model, song):
    rules = [GTZAN_RULE, {**GTZAN_RULE, "expected": ["reggae", "soul"], "name": "soul show"},
             {"type": "silence", "for": 5.0}]
    settings = Settings(tmp_path / "settings.json")
    engine = Engine(hop=1.0, settings=settings)
    sink = Collector()
    engine.add_sink(sink)
    engine.use_model(model)
    sid = engine.start_source({"kind": "file", "path": song, "id": "radio", "loop": True})
    engine.set_monitoring(smoothing={"kind": "none"})
    engine.set_rules(sid, rules)
    settings.update(segments={"min_duration": -5})  # hand-edited into the file: unusable
    app, _ = create_app(engine, upload_dir=str(tmp_path / "uploads"))
    client = app.test_client()
    engine.worker.start()
    try:
        notices = len(sink.notices)
        engine.use_model(other_model)
        said = [n["message"] for n in sink.notices[notices:] if n["source"] == sid]
        assert any(m.startswith("monitoring settings of radio: segments (") and "the rest kept" in m for m in said)
        assert "model other: rule 2 'soul show' (unexpected_genre): the model has no reggae; watches soul only" in said
        assert any(m.startswith("model other: rule 1 (unexpected_genre)") and "paused" in m for m in said)
        # Smoothing "none" still applies: each window's smoothed probabilities are its own.
        def switched():
            return [p for p in sink.predictions if p["labels"] == list(OTHER_LABELS)]

        wait_until(lambda: len(switched()) >= 3, 60, message=lambda: sink.notices)
        got = switched()[:3]
        assert all(np.allclose(p["smoothed"], p["probs"], atol=1e-6) for p in got)
        reply = client.get(f"/api/sources/{sid}/rules").json
        assert reply["rules"] == engine.rules(sid) and len(reply["rules"]) == 3
        assert [(u["rule"], u["missing"], u["paused"]) for u in reply["unhonoured"]] == [
            (0, ["reggae", "disco"], True), (1, ["reggae"], False)]
        assert engine.monitoring()["smoothing"] == {"kind": "none"}
    finally:
        engine.shutdown()


def test_saved_gtzan_rules_history_and_exports_across_a_switch_of_label_sets(tmp_path, model, other_model, song):
    """An older settings.json (GTZAN genres in a rule) under a model without them: the rule is
    kept and still evaluates; the history spans both models' label sets and exports both."""
    (tmp_path / "settings.json").write_text(json.dumps({
        "rules": {"radio": [GTZAN_RULE]},
        "sources": [{"kind": "file", "path": song, "id": "radio", "loop": True}],
    }))
    settings = Settings(tmp_path / "settings.json")
    assert settings.problems == [] and settings["rules"]["radio"] == [GTZAN_RULE]
    engine = Engine(hop=1.0, settings=settings)
    sink, store = Collector(), open_store(tmp_path / "history.sqlite")
    engine.add_sink(sink)
    engine.add_sink(store)
    app, _ = create_app(engine, upload_dir=str(tmp_path / "uploads"), store=store)
    client = app.test_client()

    def predictions(labels):
        with sink.lock:
            return [p for p in sink.predictions if p["labels"] == list(labels)]

    engine.use_model(model)
    engine.start_source(settings["sources"][0])
    engine.worker.start()
    try:
        wait_until(lambda: len(predictions(model.labels)) >= 2, 60, message=lambda: sink.notices)
        notices, alerts = len(sink.notices), len(sink.alerts)
        engine.use_model(other_model)
        warned = [n for n in sink.notices[notices:] if n["source"] == "radio" and n["level"] == "warning"]
        assert [n["message"] for n in warned] == [
            "model other: rule 1 (unexpected_genre): the model has no reggae, disco; paused: it would fire on "
            "all music; kept for a model that has them"]
        # Neither expected genre can come out on top: the rule would fire on whatever plays, so it waits
        # (paused) for a model that has them, over more windows than its 2 s.
        wait_until(lambda: len(predictions(OTHER_LABELS)) >= 5, 60)
        assert [a for a in sink.alerts[alerts:] if a["state"] == "firing"] == []
        rules = client.get("/api/sources/radio/rules").json
        assert rules["rules"] == [GTZAN_RULE] and rules["missing_genres"] == ["reggae", "disco"]
        assert [(u["rule"], u["paused"]) for u in rules["unhonoured"]] == [(0, True)]
        assert client.get("/api/sources").json["model"]["labels"] == list(OTHER_LABELS)
    finally:
        engine.shutdown()
    assert store.flush()

    windows = client.get("/api/history?source=radio&from=0").json
    label_sets = {frozenset(w["probs"]) for w in windows}
    assert label_sets == {frozenset(model.labels), frozenset(OTHER_LABELS)}, label_sets
    summary = client.get("/api/summary?source=radio&from=0").json
    assert set(summary["genres"]) <= set(model.labels) | set(OTHER_LABELS) | {"uncertain"}

    res = client.get("/api/export/windows.csv?source=radio&from=0")
    rows = list(csv.DictReader(io.StringIO(res.get_data(as_text=True))))
    assert res.status_code == 200 and len(rows) == len(windows)
    only_default = next(g for g in model.labels if g not in OTHER_LABELS)
    by_model = {name: [r for r in rows if r["model"] == name] for name in (model.name, other_model.name)}
    assert all(by_model.values()), {k: len(v) for k, v in by_model.items()}
    assert all(r["prob_soul"] == "" and r[f"prob_{only_default}"] != "" for r in by_model[model.name])
    assert all(r["prob_soul"] != "" and r[f"prob_{only_default}"] == "" for r in by_model[other_model.name])
    exported = json.loads(client.get("/api/export/windows.json?source=radio&from=0").get_data(as_text=True))
    assert [(w["wall"], w["probs"]) for w in exported] == [(w["wall"], w["probs"]) for w in windows]
    store.close()


def test_classify_and_evaluate_with_another_label_set(tmp_path, other_dir, song, capsys):
    args = build_parser().parse_args(["classify", song, "--model", other_dir, "--json"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["probabilities"]) == list(OTHER_LABELS)
    assert result["genre"] in OTHER_LABELS and len(result["timeline"][0]["probabilities"]) == len(OTHER_LABELS)

    # Folders named after the model's genres are scored; one it lacks is reported and left out.
    data = make_collection(str(tmp_path / "eval"), genres=("soul", "electronic", "reggae"), per_genre=1, seconds=4.0)
    args = build_parser().parse_args(["evaluate", data, "--model", other_dir, "--json", "--hop", "1"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == list(OTHER_LABELS) and report["skipped_folders"] == {"reggae": 1}
    assert report["n_tracks"] == 2 and len(report["confusion"]) == len(OTHER_LABELS)
