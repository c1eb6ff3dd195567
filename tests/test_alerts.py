"""Alert rules: validation, unexpected genre, silence; once per episode."""

import pytest

from server.monitor.alerts import AlertEvaluator, RuleError, missing_genres, unhonoured, validate_rules
from tests.support.monitor import LABELS, WALL0

JAZZ_RULE = {"type": "unexpected_genre", "expected": ["jazz", "blues"], "for": 60}
SILENCE_RULE = {"type": "silence", "for": 10, "threshold_db": -50}


def feed(ev, tops, levels=None, t0=3.0):
    """One window a second: tops[i] on top, levels[i] dBFS."""
    alerts = []
    for i, top in enumerate(tops):
        t = t0 + i
        alerts += ev.update(t, WALL0 + t, top, None, None if levels is None else levels[i], LABELS)
    return alerts


def test_unexpected_genre_fires_once_after_for_seconds_and_resolves():
    ev = AlertEvaluator([JAZZ_RULE], LABELS)
    tops = ["jazz"] * 30 + ["metal"] * 100 + ["blues"] * 10 + ["metal"] * 20
    alerts = feed(ev, tops)
    assert [a["state"] for a in alerts] == ["firing", "resolved"]
    fire, res = alerts
    assert fire["t"] == 3.0 + 30 + 60  # metal on top since t=33, for 60 s
    assert fire["wall"] == WALL0 + fire["t"]
    assert fire["type"] == "unexpected_genre" and fire["rule"] == 0 and fire["genre"] == "metal"
    assert fire["message"] == "metal has dominated for 60 s (expected jazz, blues)"
    assert res["t"] == 3.0 + 130 and res["genre"] == "metal"
    assert "jazz, blues" in res["message"]
    assert ev.firing() == []  # 20 s of metal at the end: not long enough to fire again


def test_unexpected_genres_count_together_and_expected_breaks_the_episode():
    ev = AlertEvaluator([dict(JAZZ_RULE, **{"for": 20})], LABELS)
    # rock and metal alternate: still "anything else dominates"; a jazz window restarts the clock
    tops = ["rock", "metal"] * 5 + ["jazz"] + ["rock", "metal", "metal"] * 8
    alerts = feed(ev, tops)
    assert [a["state"] for a in alerts] == ["firing"]
    assert alerts[0]["t"] == 3.0 + 11 + 20 and alerts[0]["genre"] == "metal"


def test_silence_fires_and_resolves():
    ev = AlertEvaluator([SILENCE_RULE])
    levels = [-20.0] * 10 + [-70.0] * 30 + [-15.0] * 5 + [-80.0] * 5
    alerts = feed(ev, ["jazz"] * len(levels), levels)
    assert [(a["type"], a["state"]) for a in alerts] == [("silence", "firing"), ("silence", "resolved")]
    fire, res = alerts
    assert fire["t"] == 3.0 + 10 + 10 and "genre" not in fire
    assert fire["message"] == "silence for 10 s (level below -50 dBFS)"
    assert res["t"] == 3.0 + 40 and res["message"] == "sound is back after 30 s of silence"


def test_unknown_level_neither_starts_nor_ends_silence():
    ev = AlertEvaluator([SILENCE_RULE])
    levels = [-70.0] * 5 + [None] * 3 + [-70.0] * 10 + [None] * 5 + [-10.0]
    alerts = feed(ev, ["jazz"] * len(levels), levels)
    assert [(a["state"], a["t"]) for a in alerts] == [("firing", 3.0 + 10), ("resolved", 3.0 + 23)]


def test_rules_run_side_by_side_with_their_indices():
    ev = AlertEvaluator([SILENCE_RULE, JAZZ_RULE], LABELS)
    alerts = feed(ev, ["pop"] * 70, [-90.0] * 70)
    assert sorted((a["rule"], a["type"]) for a in alerts) == [(0, "silence"), (1, "unexpected_genre")]


def test_validate_rules_fills_defaults():
    rules = validate_rules([{"type": "silence"}, {"type": "unexpected_genre", "expected": "jazz", "name": "jazz only"}])
    assert rules == [{"type": "silence", "for": 10.0, "threshold_db": -50.0},
                     {"type": "unexpected_genre", "for": 60.0, "name": "jazz only", "expected": ["jazz"]}]
    assert validate_rules(None) == []


@pytest.mark.parametrize("rules, words", [
    ([{"type": "loudness"}], "rule 1: unknown rule type 'loudness'; use one of: unexpected_genre, silence"),
    ([SILENCE_RULE, {"type": "unexpected_genre", "expected": ["jazz", 7]}],
     "rule 2: 'expected' must be a non-empty list of genre names"),
    ([{"type": "silence", "for": 0}], "rule 1: 'for' must be a positive number of seconds, got 0"),
    ([{"type": "unexpected_genre", "expected": ["jazz"], "for": -5}], "positive number of seconds, got -5"),
    ([{"type": "silence", "for": "long"}], "'for' must be a duration in seconds, got 'long'"),
    ([{"type": "silence", "threshold_db": 10}], "'threshold_db' must be a level in dBFS"),
    ([{"type": "unexpected_genre", "expected": []}], "'expected' must be a non-empty list of genre names"),
    ([{"type": "silence", "threshold": -40}], "unknown field(s) threshold for a silence rule"),
    ({"type": "silence"}, "alert rules must be a list"),
    (["silence"], "rule 1: a rule must be an object"),
    # Bounded like a source's label: an alert carries its name everywhere.
    ([{"type": "silence", "name": "x" * 201}], "rule 1: 'name' is too long (201 characters; at most 200)"),
    ([{"type": "silence", "name": 7}], "rule 1: 'name' must be a non-empty string"),
    ([{"type": "unexpected_genre", "expected": ["jazz", "x" * 201]}], "'expected' is too long"),
    ([{"type": "unexpected_genre", "expected": ["g%d" % i for i in range(101)]}], "too many genres (at most 100)"),
    ([{"type": "silence", "for": 1e308}], "got 1e+308 (at most 604800 s, a week)"),
    ([{"type": "talk", "for": 604801}], "at most 604800 s"),
])
def test_bad_rules_have_clear_messages(rules, words):
    with pytest.raises(RuleError) as err:
        validate_rules(rules)
    assert words in str(err.value)
    assert isinstance(err.value, ValueError) and len(str(err.value)) < 400


def test_a_genre_the_model_lacks_is_kept_and_never_matches():
    rule = {"type": "unexpected_genre", "expected": ["electronic", "jazz"], "for": 10}
    assert validate_rules([rule])[0]["expected"] == ["electronic", "jazz"]
    assert missing_genres([SILENCE_RULE, rule, {**rule, "expected": "polka"}], LABELS) == ["electronic", "polka"]
    assert missing_genres([rule], LABELS + ["electronic"]) == []
    # jazz still counts as expected; electronic never comes out on top, so it never does.
    assert feed(AlertEvaluator([rule], LABELS), ["jazz"] * 30) == []
    alerts = feed(AlertEvaluator([rule], LABELS), ["jazz"] * 5 + ["rock"] * 20)
    assert [a["state"] for a in alerts] == ["firing"]
    assert alerts[0]["message"] == "rock has dominated for 10 s (expected electronic, jazz; the model has no electronic)"
    # A rule expecting only genres the model lacks would fire on all music: it is paused, and says so.
    alone = {**rule, "expected": ["electronic"]}
    assert feed(AlertEvaluator([alone], LABELS), ["jazz"] * 20) == []
    assert unhonoured([SILENCE_RULE, rule, alone], LABELS) == [
        {"rule": 1, "type": "unexpected_genre", "missing": ["electronic"], "paused": False,
         "message": "rule 2 (unexpected_genre): the model has no electronic; watches jazz only"},
        {"rule": 2, "type": "unexpected_genre", "missing": ["electronic"], "paused": True,
         "message": "rule 3 (unexpected_genre): the model has no electronic; paused: it would fire on all music; "
                    "kept for a model that has them"}]
    assert unhonoured([alone], LABELS + ["electronic"]) == []
    assert [a["t"] for a in feed(AlertEvaluator([alone], LABELS + ["electronic"]), ["jazz"] * 20)] == [3.0 + 10]
