"""The source kinds: one entry per kind, read by the API, the CLI, the engine, the cluster and the page.

An entry holds everything a kind means: its request fields, its CLI syntax, the checks that
need nothing opened, how a request becomes a spec, how a spec becomes a ``Source``, the hint
its ids are made from, and what the page's picker offers. A new kind is a new entry here
(plus its ``server/audio`` source); ``server/source_specs`` holds the functions that read them.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .audio.source import Source
from .schemas import LABEL, device, show, string

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "media" / "demo"


class SourceSpecError(ValueError):
    """A source choice that cannot be honoured; the message is for the user."""


@dataclass(frozen=True)
class CliSyntax:
    """How the command line names a kind: ``prefix[:ARG]`` for each prefix (and bare text with ``bare``)."""

    usage: str                       # shown in help and errors, e.g. "mic[:DEVICE]"
    prefixes: tuple[str, ...]
    parse: Callable[[str], dict]     # the text after "prefix:" → spec; SourceSpecError when unusable
    bare: tuple[str, ...] = ()       # text starting with one of these is this kind as a whole


@dataclass(frozen=True)
class SourceKind:
    name: str
    fields: dict                     # request fields beside kind and hop: {field: schemas checker}
    required: tuple[str, ...] = ()
    # The request's fields → the engine's spec; ``ctx`` has ``media_path(path)`` and ``upload(id)``
    # (both raise SourceSpecError). Default: the fields as given.
    from_request: Callable[[dict, object], dict] | None = None
    check: Callable[[dict], None] = lambda spec: None     # checks that open nothing (the cluster's too)
    build: Callable[[dict, bool], Source] | None = None    # (spec, fast) → Source; None: request-only
    id_hint: Callable[[dict], str] = lambda spec: ""
    cli: CliSyntax | None = None
    page: dict = field(default_factory=dict)              # the picker's tab (see static/js/picker.js)


# --- demo ------------------------------------------------------------------------------------------------
def demo_playlist() -> list[str]:
    m3u = DEMO_DIR / "playlist.m3u"
    if m3u.exists():
        names = [ln.strip() for ln in m3u.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        paths = [str(DEMO_DIR / n) for n in names]
    else:
        paths = sorted(str(p) for p in DEMO_DIR.glob("*.ogg"))
    if not paths:
        raise SourceSpecError(f"the demo playlist is missing ({DEMO_DIR})")
    return paths


def _build_demo(spec: dict, fast: bool) -> Source:
    from .audio.file_source import FileSource

    return FileSource(demo_playlist(), loop=True, realtime=not fast, output_device=spec.get("output_device"),
                      label=spec.get("label") or "Demo playlist")


# --- mic -------------------------------------------------------------------------------------------------
def _check_mic(spec: dict) -> None:
    device_ = spec.get("device")
    if device_ is not None and not isinstance(device_, (int, str)):
        raise SourceSpecError("'device' must be a device index or name")
    rate = spec.get("samplerate")
    if rate is not None and not (isinstance(rate, (int, float)) and 1000 <= rate <= 384000):
        raise SourceSpecError("'samplerate' must be a number of Hz between 1000 and 384000")


def _build_mic(spec: dict, fast: bool) -> Source:
    from .audio.mic_source import MicSource

    rate = spec.get("samplerate")
    return MicSource(device=spec.get("device"), samplerate=int(rate) if rate else None)


def _cli_mic(arg: str) -> dict:
    spec = {"kind": "mic"}
    if arg:
        spec["device"] = int(arg) if arg.isdigit() else arg
    return spec


# --- stream ----------------------------------------------------------------------------------------------
def _check_stream(spec: dict) -> None:
    from .audio.stream_source import StreamError, validate_url

    url = spec.get("url")
    if not isinstance(url, str) or not url.strip():
        raise SourceSpecError("a stream source needs a 'url'")
    try:
        validate_url(url.strip(), allow_file=False)
    except (StreamError, ValueError) as exc:
        raise SourceSpecError(str(exc)) from None


def _stream_request(data: dict, ctx) -> dict:
    url = data["url"]
    if url.lower().startswith("file:"):
        # A local file named as a URL: allowed only where a file path would be.
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        try:
            return {"kind": "file", "path": ctx.media_path(path)}
        except SourceSpecError as exc:
            raise SourceSpecError("a stream URL must be http:// or https://; file: URLs work only "
                                  f"for files inside the media folders ({exc})") from None
    _check_stream(data)
    return {"kind": "stream", "url": url}


def _build_stream(spec: dict, fast: bool) -> Source:
    from .audio.stream_source import StreamError, StreamSource

    try:
        return StreamSource(spec["url"].strip(), label=spec.get("label"))
    except (StreamError, ValueError) as exc:
        raise SourceSpecError(str(exc)) from None


def _cli_stream(arg: str) -> dict:
    if not arg:
        raise SourceSpecError("url: needs a stream address, e.g. url:http://radio.example/stream")
    return {"kind": "stream", "url": arg}


# --- file ------------------------------------------------------------------------------------------------
def _file_paths(spec: dict) -> list:
    return spec.get("paths") or ([spec["path"]] if spec.get("path") else [])


def _check_file(spec: dict) -> None:
    paths = _file_paths(spec)
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise SourceSpecError("a file source needs a 'path'")


def _build_file(spec: dict, fast: bool) -> Source:
    from .audio.file_source import FileSource

    paths = _file_paths(spec)
    for p in paths:
        if not os.path.isfile(p):
            raise SourceSpecError(f"no such file: {p}")
    label = spec.get("label") or (Path(paths[0]).name if len(paths) == 1 else f"{len(paths)} files")
    return FileSource(paths, loop=bool(spec.get("loop", False)), realtime=not fast,
                      output_device=spec.get("output_device"), label=label)


def _cli_file(arg: str) -> dict:
    if not arg:
        raise SourceSpecError("file: needs a path, e.g. file:/music/track.flac")
    return {"kind": "file", "paths": arg.split(",")}


def _file_id_hint(spec: dict) -> str:
    path = spec.get("path") or (spec.get("paths") or [""])[0]
    return re.sub(r"\.[a-z0-9]{2,4}$", "", os.path.basename(str(path).rstrip("/")))


# --- upload: a browser upload, started as a file source --------------------------------------------------
def _upload_request(data: dict, ctx) -> dict:
    item = ctx.upload(data["upload_id"])
    return {"kind": "file", "path": item["path"], "label": item["name"]}


KINDS: dict[str, SourceKind] = {k.name: k for k in (
    SourceKind(
        "demo", {"label": LABEL}, build=_build_demo,
        cli=CliSyntax("demo", ("demo",), lambda arg: {"kind": "demo"}),
        page={"tab": "Demo", "hint": "Built-in demo playlist, looped in real time."}),
    SourceKind(
        "mic", {"device": device, "label": LABEL},
        from_request=lambda data, ctx: {"kind": "mic", "device": data.get("device")},
        check=_check_mic, build=_build_mic, id_hint=lambda spec: str(spec.get("device") or "default"),
        cli=CliSyntax("mic[:DEVICE]", ("mic",), _cli_mic),
        page={"tab": "Device", "panel": "mic"}),
    SourceKind(
        "stream", {"url": string(4096), "label": LABEL}, ("url",), from_request=_stream_request,
        check=_check_stream, build=_build_stream,
        id_hint=lambda spec: re.sub(r"^https?://", "", str(spec.get("url", ""))),
        cli=CliSyntax("url:URL", ("url", "stream"), _cli_stream, bare=("http://", "https://")),
        page={"tab": "Stream", "field": "url", "label": "Stream URL", "placeholder": "https://radio.example/live.mp3",
              "hint": "Stream URL (http/https): Icecast, Shoutcast, HLS. Reconnects on drop-outs.",
              "pattern": r"^https?://\S+$",
              "prompt": "Enter an http:// or https:// stream address (Icecast, Shoutcast, HLS…)."}),
    SourceKind(
        "file", {"path": string(4096), "label": LABEL}, ("path",),
        from_request=lambda data, ctx: {"kind": "file", "path": ctx.media_path(data["path"])},
        check=_check_file, build=_build_file, id_hint=_file_id_hint,
        cli=CliSyntax("file:PATH[,PATH...]", ("file",), _cli_file),
        # The panel is the page's own: its hint names the server's media folders.
        page={"tab": "File", "panel": "file", "field": "path", "label": "Path on the server",
              "placeholder": "/music/track.flac", "prompt": "Enter the path of an audio file on the server."}),
    SourceKind(
        "upload", {"upload_id": string(64)}, ("upload_id",), from_request=_upload_request,
        page={"tab": "Upload", "panel": "upload"}),
)}


def _listed(names, last: str = "or") -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def unknown_kind(kind) -> SourceSpecError:
    """The refusal of a kind no entry names, the same wherever it is given."""
    return SourceSpecError(f"unknown source kind {show(kind)}: the kinds are {_listed(KINDS, 'and')}")


def kind_of(spec) -> SourceKind:
    """The entry of ``spec["kind"]``; ``SourceSpecError`` for anything else."""
    if not isinstance(spec, dict):
        raise SourceSpecError("a source must be an object with a 'kind'")
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise unknown_kind(kind)
    return KINDS[kind]


def runnable_kinds() -> list[str]:
    """Kinds a spec can name (the others exist only as requests, e.g. an upload becomes a file)."""
    return [k.name for k in KINDS.values() if k.build is not None]


def cli_usage() -> str:
    """``demo | mic[:DEVICE] | ...`` for help texts."""
    return " | ".join(k.cli.usage for k in KINDS.values() if k.cli)


def cli_kinds() -> str:
    """``demo, mic[:DEVICE], ... or file:PATH`` for messages."""
    return _listed(k.cli.usage for k in KINDS.values() if k.cli)
