"""Explicit schemas for every Socket.IO payload, REST body and REST query (docs/events.md, docs/api.md).

A schema is a dict ``{field: checker}`` plus the required fields; a checker takes
``(value, where)`` and returns the normalised value or raises ``SchemaError``. Unknown
fields are refused by name. Deeper checks (a rule's genres, a device's existence) stay
with the engine; this layer makes sure only well-formed, bounded values reach it.
"""

from __future__ import annotations

import math
import sys

from server.config import MAX_HOP_SECONDS, MAX_LABEL_CHARS, MAX_SOURCES, MIN_HOP_SECONDS
from server.monitor.smoothing import KINDS as SMOOTHING_KINDS
from server.monitor.stage import SEGMENT_SETTINGS

MAX_STRING = 2000
MAX_LIST = 200
# Unix seconds accepted in history queries: 1970 … 2286.
MAX_UNIX_TIME = 1e10
MAX_HISTORY_LIMIT = 100000
# Beyond this no float holds a JSON integer (1.8e308): such numbers are refused, never converted.
MAX_JSON_NUMBER = int(sys.float_info.max)


class SchemaError(ValueError):
    """A payload does not match its schema; the message is for the client."""


# --- checkers ------------------------------------------------------------------------------------------
def string(max_len: int = MAX_STRING):
    def check(value, where):
        if not isinstance(value, str) or not value.strip():
            raise SchemaError(f"{where} must be a non-empty string")
        if len(value) > max_len:
            raise SchemaError(f"{where} is too long (at most {max_len} characters)")
        return value.strip()
    return check


def number(lo: float, hi: float, unit: str = "", integer: bool = False):
    what = "a whole number" if integer else "a number"
    span = f"from {lo:g} to {hi:g}{unit}"

    def check(value, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(f"{where} must be {what} {span}, got {show(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaError(f"{where} must be a finite number {span}, got {show(value)}")
        # Compared before any float(): a JSON integer may have hundreds of digits, which float() overflows on.
        if not lo <= value <= hi or (integer and value != int(value)):
            raise SchemaError(f"{where} must be {what} {span}, got {show(value)}")
        return int(value) if integer else float(value)
    return check


def _json_numbers(value, where):
    """Refuse numbers no float can hold anywhere inside ``value`` (the engine converts with float()).

    Iterative: a deeply nested payload must not hit the recursion limit here.
    """
    todo = [(value, where)]
    while todo:
        value, where = todo.pop()
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and not -MAX_JSON_NUMBER <= value <= MAX_JSON_NUMBER:
            raise SchemaError(f"{where} must be a number a float can hold, got {show(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaError(f"{where} must be a finite number, got {show(value)}")
        if isinstance(value, dict):
            todo += [(v, f"{where}.{k}") for k, v in value.items()]
        elif isinstance(value, list):
            todo += [(v, f"{where}[{i}]") for i, v in enumerate(value)]


def enum(*values):
    def check(value, where):
        if not isinstance(value, str) or value not in values:
            raise SchemaError(f"{where} must be one of {', '.join(values)}; got {show(value)}")
        return value
    return check


def list_of(item, max_items: int = MAX_LIST):
    def check(value, where):
        if not isinstance(value, list):
            raise SchemaError(f"{where} must be a list")
        if len(value) > max_items:
            raise SchemaError(f"{where} has too many entries (at most {max_items})")
        return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return check


def any_object(max_keys: int = 50):
    """An object whose keys the engine checks (a rule); only its size is bounded here."""
    def check(value, where):
        if not isinstance(value, dict):
            raise SchemaError(f"{where} must be an object")
        if len(value) > max_keys:
            raise SchemaError(f"{where} has too many fields")
        _json_numbers(value, where)
        return value
    return check


def nested(fields: dict, required=()):
    def check(value, where):
        return validate(value, fields, required, where)
    return check


def device(value, where):
    """A device index, a device name (or ``loopback:<pulse source>``), or null for the default."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) > 500:  # before int(), which refuses 4300+ digits with ValueError
        return string(500)(value, where)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return number(0, 100000, integer=True)(value, where)
    if isinstance(value, str):
        return string(500)(value, where)
    raise SchemaError(f"{where} must be a device index, a name, or null")


def show(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 30:
        # repr() of a huge int is useless to the reader (and raises past 4300 digits).
        return f"a number of about {int((value.bit_length() - 1) * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _default_where(where: str) -> str:
    return where or "payload"


def validate(data, fields: dict, required=(), where: str = "") -> dict:
    """``data`` checked against ``{field: checker}``; ``None`` values count as absent."""
    if not isinstance(data, dict):
        raise SchemaError(f"{_default_where(where)} must be a JSON object, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise SchemaError(f"{_default_where(where)}: unknown field(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(fields) or 'none'}")
    out = {}
    for key, check in fields.items():
        value = data.get(key)
        if value is None:
            if key in required:
                raise SchemaError(f"{_default_where(where)}: '{key}' is required")
            continue
        out[key] = check(value, f"'{key}'" if not where else f"{where}.{key}")
    return out


# --- Socket.IO events / REST bodies --------------------------------------------------------------------
HOP = number(MIN_HOP_SECONDS, MAX_HOP_SECONDS, " s")
LABEL = string(MAX_LABEL_CHARS)
# A start_source request's fields are its kind's (``server.source_kinds``), checked by ``server.source_specs``.

SMOOTHING = {"kind": enum(*SMOOTHING_KINDS), "tau": number(0.001, 3600, " s"),
             "n": number(1, 101, integer=True)}
SEGMENTS = {key: number(*bounds) for key, bounds in SEGMENT_SETTINGS.items()}
MAX_RULES = 50  # alert rules per source
RULES = list_of(any_object(), max_items=MAX_RULES)


def watch_sources(value, where):
    """``"all"`` (returned as None) or a list of source ids."""
    if value == "all":
        return None
    return list_of(string(200), MAX_LIST)(value, where)


EVENTS = {
    "stop_source": ({"id": string(200)}, ("id",)),
    "restart_source": ({"id": string(200)}, ("id",)),
    "watch": ({"sources": watch_sources}, ()),
    "select_model": ({"name": string(200)}, ("name",)),
    "set_rules": ({"source": string(200), "rules": RULES}, ("source", "rules")),
    "set_monitoring": ({"smoothing": nested(SMOOTHING, ("kind",)), "segments": nested(SEGMENTS)}, ()),
    # REST bodies
    "put_rules": ({"rules": RULES}, ("rules",)),
}


def check_event(event: str, data) -> dict:
    """Validate the payload of ``event`` (a key of ``EVENTS``); ``None`` is an empty object."""
    fields, required = EVENTS[event]
    return validate({} if data is None else data, fields, required)


def check_monitoring(data) -> dict:
    out = check_event("set_monitoring", data)
    if not out:
        raise SchemaError("give 'smoothing' and/or 'segments', e.g. {\"segments\": {\"min_duration\": 15}}")
    if "smoothing" in out:
        _smoothing_fits_kind(out["smoothing"])
    return out


def _smoothing_fits_kind(sm: dict) -> dict:
    extra = {"ema": {"n"}, "median": {"tau"}, "none": {"tau", "n"}}[sm["kind"]] & set(sm)
    if extra:
        raise SchemaError(f"smoothing: {', '.join(sorted(extra))} does not apply to kind {sm['kind']!r}")
    return sm


# --- settings.json: the same checkers as the API (the fields are ``server.settings.FIELDS``) -------------
def boolean(value, where):
    if not isinstance(value, bool):
        raise SchemaError(f"{where} must be true or false, got {show(value)}")
    return value


def rules_by_source(value, where):
    """``{source id: [rule, ...]}``."""
    if not isinstance(value, dict):
        raise SchemaError(f"{where} must be an object mapping source ids to lists of rules")
    if len(value) > MAX_SOURCES:
        raise SchemaError(f"{where} has too many sources (at most {MAX_SOURCES})")
    return {string(200)(k, f"{where} key"): RULES(v, f"{where}.{k}") for k, v in value.items()}


def smoothing_setting(value, where):
    sm = nested(SMOOTHING, ("kind",))(value, where)
    try:
        return _smoothing_fits_kind(sm)
    except SchemaError as exc:
        raise SchemaError(f"{where}: {exc}") from None


# --- REST query strings --------------------------------------------------------------------------------
def _unix_time(raw, where):
    try:
        value = float(raw)
    except ValueError:
        raise SchemaError(f"{where} must be a unix time in seconds, not {show(raw)}") from None
    return number(0, MAX_UNIX_TIME, " (unix seconds)")(value, where)


def _limit(raw, where):
    try:
        value = int(raw)
    except ValueError:
        raise SchemaError(f"{where} must be a whole number from 1 to {MAX_HISTORY_LIMIT}, not {show(raw)}") from None
    return number(1, MAX_HISTORY_LIMIT, integer=True)(value, where)


_RANGE = {"source": lambda raw, where: string(200)(raw, where), "from": _unix_time, "to": _unix_time}
QUERIES = {
    "history": {**_RANGE, "limit": _limit},
    "range": _RANGE,
    "none": {},
}


def check_query(args, kind: str) -> dict:
    """Query parameters (a werkzeug ``MultiDict``) against ``QUERIES[kind]``; blanks count as absent."""
    fields = QUERIES[kind]
    out = {}
    for key in args:
        values = args.getlist(key)
        if key not in fields:
            allowed = ", ".join(fields) or "none"
            raise SchemaError(f"unknown query parameter {show(key)}; allowed: {allowed}")
        if len(values) > 1:
            raise SchemaError(f"query parameter '{key}' given {len(values)} times")
        raw = values[0].strip()
        if raw:
            out[key] = fields[key](raw, f"'{key}'")
    return out
