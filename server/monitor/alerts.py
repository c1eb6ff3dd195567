"""Alert rules evaluated on every window of one source.

Rules (JSON-friendly dicts):

- ``{"type": "unexpected_genre", "expected": ["jazz", "blues"], "for": 60}``: fires when
  genres outside ``expected`` have been on top (of the smoothed probabilities) for
  ``for`` seconds without a break; resolves when an expected genre is back on top.
- ``{"type": "silence", "for": 10, "threshold_db": -50}``: fires when the window level
  (dBFS RMS) has stayed below ``threshold_db`` for ``for`` seconds; resolves when
  sound returns.
- ``{"type": "talk", "for": 120}``: fires when the content has been speech for ``for``
  seconds without a break ("talk longer than N s"); resolves when anything else returns.
- ``{"type": "no_music", "for": 60}``: fires when no window has been music for ``for``
  seconds (talk, silence or noise instead); resolves when music returns.

Genre rules look at music only: a window of talk, silence or noise neither counts
towards an ``unexpected_genre`` episode nor ends it (its time is left out).

``expected`` may name genres the current model lacks: rules outlive a model switch, so
such a genre is kept (``missing_genres`` names it for the dashboard) and simply never
matches, since the model never puts it on top. A rule none of whose expected genres the
model has is paused (it would fire on all music) until a model has one; ``unhonoured``
says which rules, and why, for the API, the dashboard and the log.

An alert fires once per episode and resolves once; nothing repeats every window.
"""
from __future__ import annotations

import math
from collections import Counter

from ..config import MAX_GAP_SECONDS, MAX_LABEL_CHARS
from ..model.content import MUSIC, SPEECH

RULE_TYPES = ("unexpected_genre", "silence", "talk", "no_music")
DEFAULTS = {
    "unexpected_genre": {"for": 60.0},
    "silence": {"for": 10.0, "threshold_db": -50.0},
    "talk": {"for": 120.0},
    "no_music": {"for": 60.0},
}
_KEYS = {
    "unexpected_genre": {"type", "expected", "for", "name"},
    "silence": {"type", "for", "threshold_db", "name"},
    "talk": {"type", "for", "name"},
    "no_music": {"type", "for", "name"},
}


# Bounds that keep a rule small: an alert carries its name to every dashboard, the webhook and the history.
MAX_RULE_SECONDS = 7 * 86400.0   # 'for': a week
MAX_EXPECTED_GENRES = 100        # 'expected': genre names, each at most MAX_LABEL_CHARS long


class RuleError(ValueError):
    """An alert rule that cannot be used; the message says which and why."""


def _seconds(rule: dict, where: str) -> float:
    value = rule.get("for", DEFAULTS[rule["type"]]["for"])
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer of 309+ digits
        raise RuleError(f"{where}: 'for' must be a duration in seconds, got {_show(value)}") from None
    if isinstance(value, bool) or not math.isfinite(v) or not 0 < v <= MAX_RULE_SECONDS:
        raise RuleError(f"{where}: 'for' must be a positive number of seconds, got {_show(value)} "
                        f"(at most {MAX_RULE_SECONDS:g} s, a week)")
    return v


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _name(value, where: str, field: str) -> str:
    """A rule's name or an expected genre: a non-empty string of at most ``MAX_LABEL_CHARS``."""
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"{where}: '{field}' must be a non-empty string, got {_show(value)}")
    if len(value) > MAX_LABEL_CHARS:
        raise RuleError(f"{where}: '{field}' is too long ({len(value)} characters; at most {MAX_LABEL_CHARS})")
    return value


def validate_rules(rules) -> list[dict]:
    """Check rules and return normalised copies (defaults filled in, numbers as floats).

    Genre names are not checked against any model's labels (see the module docstring).
    Raises ``RuleError``.
    """
    if rules is None:
        return []
    if not isinstance(rules, (list, tuple)):
        raise RuleError(f"alert rules must be a list of rules, got {type(rules).__name__}")
    out = []
    for i, rule in enumerate(rules):
        where = f"rule {i + 1}"
        if not isinstance(rule, dict):
            raise RuleError(f"{where}: a rule must be an object like {{'type': 'silence', 'for': 10}}")
        kind = rule.get("type")
        if kind not in RULE_TYPES:
            raise RuleError(f"{where}: unknown rule type {_show(kind)}; use one of: {', '.join(RULE_TYPES)}")
        extra = set(rule) - _KEYS[kind]
        if extra:
            raise RuleError(f"{where}: unknown field(s) {', '.join(sorted(str(k)[:40] for k in extra)[:10])} for a {kind} rule"
                            f" (allowed: {', '.join(sorted(_KEYS[kind] - {'type'}))})")
        norm = {"type": kind, "for": _seconds(rule, where)}
        if "name" in rule:
            norm["name"] = _name(rule["name"], where, "name")
        if kind == "unexpected_genre":
            expected = rule.get("expected")
            if isinstance(expected, str):
                expected = [expected]
            if not isinstance(expected, (list, tuple)) or not expected or not all(isinstance(g, str) for g in expected):
                raise RuleError(f"{where}: 'expected' must be a non-empty list of genre names, got {_show(expected)}")
            if len(expected) > MAX_EXPECTED_GENRES:
                raise RuleError(f"{where}: 'expected' has too many genres (at most {MAX_EXPECTED_GENRES})")
            norm["expected"] = list(dict.fromkeys(_name(g, where, "expected") for g in expected))
        elif kind == "silence":
            value = rule.get("threshold_db", DEFAULTS["silence"]["threshold_db"])
            try:
                db = float(value)
            except (TypeError, ValueError):
                db = math.nan
            if isinstance(value, bool) or not math.isfinite(db) or db > 0:
                raise RuleError(f"{where}: 'threshold_db' must be a level in dBFS (0 or below, e.g. -50), "
                               f"got {_show(value)}")
            norm["threshold_db"] = db
        out.append(norm)
    return out


def missing_genres(rules, labels) -> list[str]:
    """The genres ``rules`` expect that ``labels`` lack, in first-seen order."""
    have = {str(x) for x in labels}
    out: list[str] = []
    for rule in rules or ():
        expected = rule.get("expected", ()) if rule.get("type") == "unexpected_genre" else ()
        for genre in [expected] if isinstance(expected, str) else expected:
            if genre not in have and genre not in out:
                out.append(genre)
    return out


def unhonoured(rules, labels) -> list[dict]:
    """The rules a model with ``labels`` cannot honour as written: per rule ``{"rule": its index,
    "type", "missing": [genres it expects that the model lacks], "paused": true when it has
    none of them}`` and a ``message`` that says so."""
    out = []
    for i, rule in enumerate(rules or ()):
        missing = missing_genres([rule], labels)
        if not missing:
            continue
        expected = rule.get("expected", ())
        kept = [g for g in ([expected] if isinstance(expected, str) else expected) if g not in missing]
        paused = not kept
        effect = ("paused: it would fire on all music; kept for a model that has them" if paused
                  else f"watches {', '.join(kept)} only")
        name = f" {rule['name']!r}" if rule.get("name") else ""
        out.append({"rule": i, "type": rule.get("type"), "missing": missing, "paused": paused,
                    "message": f"rule {i + 1}{name} ({rule.get('type')}): the model has no {', '.join(missing)}; "
                               + effect})
    return out


class _Episode:
    """A stretch of windows where a rule's condition holds."""

    __slots__ = ("since", "since_wall", "firing", "genres")

    def __init__(self, t: float, wall: float):
        self.since, self.since_wall, self.firing, self.genres = t, wall, False, Counter()


class AlertEvaluator:
    """Evaluates validated rules window by window; ``update`` returns new alerts."""

    def __init__(self, rules, labels=None):
        """``labels``: the model's genres, to name the expected ones it lacks in alert messages."""
        self.rules = validate_rules(rules)
        self.labels = None if labels is None else [str(x) for x in labels]
        # Rules whose expected genres this model has none of: they would fire on all music.
        self._paused = set() if labels is None else {u["rule"] for u in unhonoured(self.rules, self.labels)
                                                     if u["paused"]}
        self._episodes: list[_Episode | None] = [None] * len(self.rules)
        self._last_t: float | None = None

    def firing(self) -> list[int]:
        """Indices of the rules whose alert is firing now."""
        return [i for i, e in enumerate(self._episodes) if e is not None and e.firing]

    def update(self, t: float, wall: float, top: str | None, probs=None, level_db: float | None = None,
               labels=None, content: str = MUSIC) -> list[dict]:
        """One window: ``top`` is the label on top of the smoothed probabilities, ``level_db``
        the window's RMS level in dBFS (None when unknown: silence rules skip the window),
        ``content`` the window's content (``model.content``). ``probs``/``labels`` are
        accepted for future rules and ignored by these."""
        t, wall = float(t), float(wall)
        # a restarted stream or a long break: conditions that held before it do not continue it
        last, self._last_t = self._last_t, t
        restart = last is not None and (t < last or t - last > MAX_GAP_SECONDS)
        alerts = []
        for i, rule in enumerate(self.rules):
            if i in self._paused:
                continue
            kind = rule["type"]
            ep = self._episodes[i]
            if kind == "unexpected_genre":
                if content != MUSIC:  # talk is no genre: its time is left out of the episode
                    if ep is not None and not restart:
                        ep.since += t - last
                    continue
                active = None if top is None else top not in rule["expected"]
            elif kind == "silence":
                active = None if level_db is None else float(level_db) < rule["threshold_db"]
            elif kind == "talk":
                active = content == SPEECH
            else:
                active = content != MUSIC
            if active is None:
                continue
            if ep is not None and restart and not ep.firing:
                ep = self._episodes[i] = None
            if active:
                if ep is None:
                    ep = self._episodes[i] = _Episode(t, wall)
                if kind == "no_music":
                    ep.genres[content] += 1
                elif top is not None:
                    ep.genres[top] += 1
                if not ep.firing and t - ep.since >= rule["for"]:
                    ep.firing = True
                    alerts.append(self._alert(i, "firing", ep, t, wall))
            elif ep is not None:
                if ep.firing:
                    alerts.append(self._alert(i, "resolved", ep, t, wall))
                self._episodes[i] = None
        return alerts

    def _alert(self, i: int, state: str, ep: _Episode, t: float, wall: float) -> dict:
        rule = self.rules[i]
        duration = t - ep.since
        alert = {"rule": i, "type": rule["type"], "state": state, "message": "", "t": round(t, 3),
                 "wall": round(wall, 3), "since": round(ep.since, 3), "since_wall": round(ep.since_wall, 3),
                 "duration": round(duration, 1)}
        if "name" in rule:
            alert["name"] = rule["name"]
        if rule["type"] == "unexpected_genre":
            genre = ep.genres.most_common(1)[0][0] if ep.genres else "another genre"
            alert["genre"] = genre
            expected = ", ".join(rule["expected"])
            if state == "firing":
                lacking = missing_genres([rule], self.labels) if self.labels is not None else []
                note = f"; the model has no {', '.join(lacking)}" if lacking else ""
                alert["message"] = f"{genre} has dominated for {duration:.0f} s (expected {expected}{note})"
            else:
                alert["message"] = f"back to expected genres ({expected}) after {duration:.0f} s of {genre}"
        elif rule["type"] == "silence":
            if state == "firing":
                alert["message"] = f"silence for {duration:.0f} s (level below {rule['threshold_db']:g} dBFS)"
            else:
                alert["message"] = f"sound is back after {duration:.0f} s of silence"
        elif rule["type"] == "talk":
            alert["message"] = (f"talk for {duration:.0f} s" if state == "firing"
                                else f"talk ended after {duration:.0f} s")
        else:
            what = ", ".join(c for c, _ in ep.genres.most_common()) or "no music"
            alert["content"] = ep.genres.most_common(1)[0][0] if ep.genres else None
            alert["message"] = (f"no music for {duration:.0f} s ({what})" if state == "firing"
                                else f"music is back after {duration:.0f} s without")
        return alert
