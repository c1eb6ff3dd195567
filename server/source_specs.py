"""A user's source choice (a request, a CLI string, a saved spec) → a checked spec → a Source.

Every function here reads the kinds' entries in ``server.source_kinds``; none names a kind.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import schemas
from .audio.source import Source
from .config import MAX_LABEL_CHARS, MAX_SOURCES
from .source_kinds import KINDS, SourceSpecError, cli_kinds, kind_of, runnable_kinds, unknown_kind

__all__ = ["SourceSpecError", "check_request", "check_spec", "make_source", "parse_cli_spec", "saved_source",
           "shorten_label", "source_id_for", "spec_from_request", "too_many_sources"]

_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
# What a request gives every kind.
_COMMON = {"kind": schemas.enum(*KINDS), "hop": schemas.HOP}
# What the engine adds to a kind's request fields when it saves the spec (and what the CLI gives).
_SAVED_EXTRA = {"id": schemas.string(40), "output_device": schemas.device, "paths": schemas.list_of(schemas.string(4096)),
                "loop": schemas.boolean, "samplerate": schemas.number(1000, 384000, " Hz")}


# --- requests (REST body, Socket.IO payload) -------------------------------------------------------------
def check_request(data) -> dict:
    """A start_source payload checked against its kind's fields; ``SchemaError`` for the client."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise schemas.SchemaError(f"payload must be a JSON object, got {type(data).__name__}")
    try:
        kind = kind_of(data)
    except SourceSpecError as exc:
        raise schemas.SchemaError(str(exc)) from None
    return schemas.validate(data, {**_COMMON, **kind.fields}, ("kind", *kind.required))


def spec_from_request(data: dict, ctx) -> dict:
    """A checked request → the engine's spec (uploads become files, file: URLs media paths).

    ``ctx`` resolves what needs the server's state: ``media_path(path)``, ``upload(upload_id)``."""
    kind = KINDS[data["kind"]]
    spec = kind.from_request(data, ctx) if kind.from_request else {"kind": kind.name, **{
        k: data[k] for k in kind.fields if k in data}}
    for key in ("label", "hop"):
        if key in data:
            spec[key] = data[key]
    return spec


def saved_source(value, where):
    """A source spec as the engine saves it (a settings field checker): request fields, its id and extras."""
    if not isinstance(value, dict):
        raise schemas.SchemaError(f"{where} must be an object with a 'kind'")
    runnable = runnable_kinds()
    kind = value.get("kind")
    if kind not in runnable:  # an upload is saved as the file it became
        raise schemas.SchemaError(f"{where}.kind must be one of {', '.join(runnable)}; got {schemas.show(kind)}")
    return schemas.validate(value, {**_COMMON, **KINDS[kind].fields, **_SAVED_EXTRA}, ("kind",), where)


# --- the command line ------------------------------------------------------------------------------------
def parse_cli_spec(text: str) -> dict:
    """``kind[:ARG]`` as each kind's ``CliSyntax`` reads it (see ``source_kinds.cli_usage``) → a spec."""
    clis = [k.cli for k in KINDS.values() if k.cli]
    for cli in clis:
        if text.startswith(cli.bare):
            return cli.parse(text)
    prefix, _, arg = text.partition(":")
    prefix = prefix.strip().lower()
    for cli in clis:
        if prefix in cli.prefixes:
            return cli.parse(arg)
    raise SourceSpecError(f"{unknown_kind(prefix)}; on the command line: {cli_kinds()}")


# --- specs → sources -------------------------------------------------------------------------------------
def check_spec(spec) -> dict:
    """The checks ``make_source`` makes that open nothing (a cluster's web tier runs them; a worker opens)."""
    kind = kind_of(spec)
    if kind.build is None:
        raise SourceSpecError(f"a {kind.name} source is started by a request, not by a spec: "
                              f"use {', '.join(runnable_kinds())}")
    output = spec.get("output_device")
    if output is not None and not isinstance(output, (int, str)):
        raise SourceSpecError("'output_device' must be a device index or name")
    kind.check(spec)
    return spec


def shorten_label(text: str, keep_end: str = "") -> str:
    """A display name cut to ``MAX_LABEL_CHARS`` with an ellipsis, ``keep_end`` (an extension) kept."""
    if len(text) <= MAX_LABEL_CHARS:
        return text
    keep_end = keep_end if text.endswith(keep_end) and len(keep_end) < 20 else ""
    return text[:MAX_LABEL_CHARS - len(keep_end) - 1] + "…" + keep_end


def make_source(spec: dict, *, fast: bool = False) -> Source:
    """Build (not start) the source a spec describes; its label at most ``MAX_LABEL_CHARS`` long."""
    source = kind_of(check_spec(spec)).build(spec, fast)
    # Names derived from a long path or URL are display names too (the dashboard, thread names).
    source.label = shorten_label(str(source.label or ""), Path(str(source.label or "")).suffix)
    return source


def too_many_sources(running: int) -> str:
    """Why one more source is refused when ``running`` are (``config.MAX_SOURCES``, one process or a cluster)."""
    return f"too many sources: {running} are running (at most {MAX_SOURCES}); stop one first"


def source_id_for(spec: dict, taken: set[str]) -> str:
    """A readable id that stays the same across restarts, so history lines up.

    ``spec["id"]`` when given; else kind plus a slug of the kind's hint (file, device or URL:
    "stream-radio-example-org-live"), with a counter when that is taken.
    """
    wanted = spec.get("id")
    if wanted is not None:
        if not isinstance(wanted, str) or not _ID_RE.fullmatch(wanted):
            raise SourceSpecError("a source id is 1–40 letters, digits, '-' or '_'")
        if wanted in taken:
            raise SourceSpecError(f"a source with id {wanted!r} is already running")
        return wanted
    kind = spec.get("kind")
    hint = KINDS[kind].id_hint(spec) if kind in KINDS else ""
    base = "-".join(filter(None, [str(kind), re.sub(r"[^a-z0-9]+", "-", str(hint).lower()).strip("-")[:28]]))
    source_id, n = base, 1
    while source_id in taken:
        n += 1
        source_id = f"{base}-{n}"
    return source_id
