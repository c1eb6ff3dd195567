"""The content decision (music / speech / silence / noise) and what it changes downstream."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from server.classify import classify_file
from server.model.content import majority
from server.stream.features import window_mel
from server.model.content import (CONTENT_DIR, CONTENT_LABELS, MUSIC, NOISE, SILENCE, SPEECH, ContentHead,
                                  window_level_db)
from server.monitor.alerts import AlertEvaluator, validate_rules
from server.monitor.classified import ClassifiedWindow
from server.monitor.segments import SegmentTracker
from server.monitor.stage import SourceMonitor
from tests.support.audio import make_music
from tests.support.speech import speech_audio
from tests.support.wait import poll

LABELS = ["blues", "jazz", "rock"]
HAVE_HEAD = os.path.isfile(os.path.join(CONTENT_DIR, "model.json"))
needs_head = pytest.mark.skipif(not HAVE_HEAD, reason="models/content is not installed")


def _head_dir(tmp_path, thresholds=None):
    """A tiny content head on one fake feature: its sign decides speech (+) or music (−)."""
    d = tmp_path / "content"
    d.mkdir()
    (d / "model.json").write_text(json.dumps({
        "format": "genre-monitor-content", "labels": ["music", "speech", "noise"],
        "keys": ["X/f"], "backbones": ["X"], "thresholds": thresholds or {"speech": 0.8, "noise": 0.5}}))
    np.savez(d / "weights.npz", mean=np.zeros(1), scale=np.ones(1), W=np.array([[-4.0, 4.0, 0.0]]), b=np.zeros(3))
    return d


def test_content_head_thresholds_and_silence_rule(tmp_path):
    head = ContentHead(_head_dir(tmp_path))
    p = head.probabilities({"X/f": np.array([[2.0], [0.1], [-2.0], [2.0]], np.float32)})
    assert np.allclose(p.sum(axis=1), 1)
    # confident speech; speech below its threshold stays music; music; speech under the silence level
    assert head.decide(p, np.array([-20.0, -20.0, -20.0, -75.0])) == [SPEECH, MUSIC, MUSIC, SILENCE]


def test_window_level_reads_like_dbfs():
    y = make_music(16000, 3.1)
    y = (y * (10 ** (-20 / 20) / np.sqrt(np.mean(y ** 2)))).astype(np.float32)  # −20 dBFS RMS
    level = window_level_db(window_mel(y)[None])[0]
    assert -24 < level < -16
    assert window_level_db(window_mel(y * 1e-3)[None])[0] == pytest.approx(level - 60, abs=0.5)
    assert window_level_db(window_mel(np.zeros(48128, np.float32))[None])[0] < -100


# --- downstream: segments, smoothing, alerts ------------------------------------------------------------------
def test_speech_windows_make_a_speech_segment_and_never_a_genre():
    tr = SegmentTracker(LABELS, min_duration=5)
    jazz = [0.1, 0.8, 0.1]
    events = []
    for t in range(30):
        content = SPEECH if 10 <= t < 22 else MUSIC
        events += tr.update(t, 1000 + t, jazz, raw=jazz, content=content, content_confidence=0.95)
    events += tr.finish()
    closed = [e["segment"] for e in events if e["event"] == "closed"]
    assert [s["genre"] for s in closed] == ["jazz", "speech", "jazz"]
    assert closed[1]["start"] == 10 and closed[1]["end"] == 22 and closed[1]["mean_confidence"] == 0.95


def test_short_talk_stays_inside_the_music_segment():
    tr = SegmentTracker(LABELS, min_duration=15)
    for t in range(40):
        tr.update(t, 1000 + t, [0.1, 0.8, 0.1], content=SPEECH if 10 <= t < 16 else MUSIC)
    assert [e["segment"]["genre"] for e in tr.finish()] == ["jazz"]


def test_talk_does_not_move_the_smoothed_genre():
    mon = SourceMonitor(LABELS, smoothing={"kind": "ema", "tau": 3}, segments={"min_duration": 5})
    rock = [0.1, 0.1, 0.8]
    def window(t, probs, content, content_probs=None):
        return ClassifiedWindow("s", t, 1000 + t, "m", tuple(LABELS), np.array(probs), content=content,
                                content_probs=content_probs or {})

    for t in range(10):
        w, _ = mon.process(window(t, rock, MUSIC))
    before = w.smoothed
    for t in range(10, 20):  # talk that the genre head would call jazz
        w, _ = mon.process(window(t, [0.05, 0.9, 0.05], SPEECH, {"speech": 0.97}))
        assert np.array_equal(w.smoothed, before) and w.smoothed_top is None
    assert w.segment["genre"] == "speech"


def test_genre_rule_ignores_talk_and_talk_rules_fire():
    rules = validate_rules([{"type": "unexpected_genre", "expected": ["jazz"], "for": 10},
                            {"type": "talk", "for": 20}, {"type": "no_music", "for": 25}])
    assert rules[1] == {"type": "talk", "for": 20.0} and rules[2] == {"type": "no_music", "for": 25.0}
    ev = AlertEvaluator(rules, LABELS)
    fired = []
    for t in range(60):
        if t < 6 or 50 <= t:
            top, content = "rock", MUSIC
        elif t < 40:
            top, content = None, SPEECH
        else:
            top, content = None, SILENCE
        fired += [(t, a["type"], a["state"]) for a in ev.update(t, 1000 + t, top, content=content)]
    # rock 0–5 and from 50: 6 + 4 music seconds reach the 10-s genre rule only at t=54, talk in between left out
    assert (54, "unexpected_genre", "firing") in fired
    assert not any(k == "unexpected_genre" and t < 54 for t, k, _ in fired)
    assert (26, "talk", "firing") in fired and (40, "talk", "resolved") in fired
    assert (31, "no_music", "firing") in fired and (50, "no_music", "resolved") in fired


def test_rule_fields_are_checked():
    with pytest.raises(ValueError, match="unknown field"):
        validate_rules([{"type": "talk", "for": 10, "expected": ["jazz"]}])
    with pytest.raises(ValueError, match="positive"):
        validate_rules([{"type": "no_music", "for": 0}])


def test_payload_of_a_speech_window_has_no_genre():
    from server.model.genre_model import Analysis
    from server.monitor.classified import Counters, classified
    from server.sinks.payloads import prediction_payload
    from server.stream.pipeline import Window

    class Model:
        name, labels, tag_names = "m", LABELS, ["guitar"]

        def is_uncertain(self, probs):
            return False

    w = Window("s", 3.0, 1000.0, np.zeros((187, 96), np.float32), np.zeros(0), np.zeros((0, 96)), -20.0)
    a = Analysis(probs=np.array([[0.2, 0.7, 0.1]] * 2), tags=np.array([[0.3]] * 2), content=[SPEECH, MUSIC],
                 content_probs=np.array([[0.02, 0.97, 0.01], [0.9, 0.05, 0.05]]),
                 content_labels=["music", "speech", "noise"], level_db=np.array([-20.0, -20.0]))
    speech = prediction_payload(classified(w, a, 0, Model(), Counters()))
    assert speech["content"] == SPEECH and speech["top"] is None and speech["confidence"] is None
    assert speech["content_probs"]["speech"] == 0.97 and len(speech["probs"]) == 3
    assert speech["tags"] == [{"name": "guitar", "score": 0.3}] and speech["level_db"] == -20.0
    music = prediction_payload(classified(w, a, 1, Model(), Counters()))
    assert music["content"] == MUSIC and music["top"] == "jazz" and music["confidence"] == 0.7


def test_majority_prefers_the_earlier_content_on_ties():
    assert majority([SPEECH, MUSIC]) == MUSIC
    assert majority([SPEECH, SPEECH, SILENCE, NOISE]) == SPEECH
    assert CONTENT_LABELS[0] == MUSIC


# --- the installed head on real audio -------------------------------------------------------------------------
@needs_head
def test_model_tells_speech_music_and_silence_apart(tmp_path):
    from server.model.registry import load_model

    model = load_model(None)
    talk, sr = speech_audio(tmp_path)
    from server.audio.resample import resample

    y = resample(talk, sr, 16000)
    starts = range(0, len(y) - 48128, 16000)
    speech_mels = np.stack([window_mel(y[s:s + 48128]) for s in starts])
    music = make_music(16000, 12.0, seed=3)
    music_mels = np.stack([window_mel(music[s:s + 48128]) for s in range(0, len(music) - 48128, 16000)])
    silence = (np.random.default_rng(0).standard_normal(48128) * 1e-4).astype(np.float32)  # −80 dBFS hiss
    a = model.analyse(np.concatenate([speech_mels, music_mels, window_mel(silence)[None]]))
    n = len(speech_mels)
    assert np.mean([c == SPEECH for c in a.content[:n]]) >= 0.8
    assert a.content[-1] == SILENCE
    assert a.content_labels == ["music", "speech", "noise"] and a.content_probs.shape == (len(a.content), 3)
    assert np.mean([c == MUSIC for c in a.content[n:-1]]) >= 0.8
    probs, tags = model.predict(music_mels)  # the old return is unchanged
    assert np.allclose(probs, a.probs[n:-1], atol=1e-5)


@needs_head
def test_classify_a_spoken_file_gives_no_genre(tmp_path):
    from server.model.registry import load_model

    talk, sr = speech_audio(tmp_path, "en-gb+m3")
    path = tmp_path / "talk.wav"
    sf.write(path, talk, sr)
    music = tmp_path / "music.wav"
    sf.write(music, make_music(22050, 10.0, seed=5), 22050)
    model = load_model(None)
    r = classify_file(str(path), model)
    assert r["content"] == SPEECH and r["genre"] is None and r["content_share"]["speech"] >= 0.8
    assert {e["content"] for e in r["timeline"]} <= set(CONTENT_LABELS)
    assert all(e["genre"] is None for e in r["timeline"] if e["content"] != MUSIC)
    m = classify_file(str(music), model)
    assert m["content"] == MUSIC and m["genre"] in model.labels


@needs_head
def test_evaluate_reports_the_content_confusion(tmp_path):
    from server.model.registry import load_model
    from server.training.evaluate import evaluate_collection

    (tmp_path / "speech").mkdir()
    (tmp_path / "rock").mkdir()
    talk, sr = speech_audio(tmp_path)
    sf.write(tmp_path / "speech" / "news.wav", talk, sr)
    sf.write(tmp_path / "rock" / "song.wav", make_music(22050, 8.0, seed=1), 22050)
    res = evaluate_collection(load_model(None), str(tmp_path), progress=False)
    c = res["conditions"]["clean"]["content"]
    assert res["content_folders"] == ["speech"] and res["skipped_folders"] == {}
    assert c["windows"]["speech"] > 0 and c["windows"]["music"] > 0
    assert c["speech_recall"] >= 0.8 and set(c["per_genre"]) == {"rock"}
    assert res["conditions"]["clean"]["n_tracks"] == 1  # the genre scores see the music only


@needs_head
def test_evaluate_command_prints_the_content_confusion(tmp_path, capsys):
    from server.cli import main

    (tmp_path / "speech").mkdir()
    talk, sr = speech_audio(tmp_path)
    sf.write(tmp_path / "speech" / "news.wav", talk, sr)
    assert main(["evaluate", str(tmp_path), "--quiet", "--hop", "3"]) == 0  # talk alone is something to score
    out = capsys.readouterr().out
    assert "content (windows; rows true, columns decided)" in out and "speech windows reported as speech" in out
    assert main(["evaluate", str(tmp_path), "--json", "--hop", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["content_folders"] == ["speech"] and report["content"]["speech_recall"] >= 0.8


@needs_head
def test_engine_reports_a_dj_link_as_talk(tmp_path):
    """Music, talk, music through the live engine: talk windows have no genre, make a speech
    segment, fire the talk rule, and leave the smoothed genre where the music put it."""
    import time

    from server.audio.resample import resample
    from server.engine import Engine
    from server.model.registry import load_model
    from tests.support.sinks import Collector

    sr = 44100
    voice, vsr = speech_audio(tmp_path)
    voice = resample(voice, vsr, sr)
    music = make_music(sr, 12.0, seed=2)
    voice *= np.sqrt(np.mean(music ** 2) / np.mean(voice ** 2))
    path = tmp_path / "dj-link.wav"
    sf.write(path, np.concatenate([music, voice, make_music(sr, 12.0, seed=4)]), sr)
    talk_from, talk_to = 12.0, 12.0 + len(voice) / sr

    engine = Engine(hop=1.0, fast=True)
    engine.use_model(load_model(None))
    engine.set_monitoring(segments={"min_duration": 4})
    sink = Collector()
    engine.add_sink(sink)
    sid = engine.start_source({"kind": "file", "path": str(path)})
    engine.set_rules(sid, [{"type": "talk", "for": 6}, {"type": "unexpected_genre", "expected": ["jazz"], "for": 200}])
    engine.worker.start()
    try:
        poll(lambda: engine.status()["sources"][0]["state"] == "ended", 120, 0.2)
        time.sleep(0.5)
    finally:
        engine.shutdown()
    preds = sink.predictions
    inside = [p for p in preds if talk_from + 3.2 <= p["t"] <= talk_to - 0.2]  # windows wholly within the talk
    assert inside and np.mean([p["content"] == SPEECH for p in inside]) >= 0.8
    for p in preds:
        assert (p["top"] is None) == (p["content"] != MUSIC)
        if p["content"] != MUSIC:
            assert p["smoothed_top"] is None
    assert any(s["genre"] == "speech" for s in sink.segments)
    fired = [a for a in sink.alerts if a["state"] == "firing"]
    assert [a["type"] for a in fired] == ["talk"]
    assert engine.status()["model"]["no_genre"] == ["speech", "silence", "noise"]
