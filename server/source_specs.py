"""Turn a user's source choice (a dict from the dashboard, a string from the CLI) into a Source."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .audio.source import Source
from .config import MAX_LABEL_CHARS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "media" / "demo"
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")


class SourceSpecError(ValueError):
    """A source choice that cannot be honoured; the message is for the user."""


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


def parse_cli_spec(text: str) -> dict:
    """'demo' | 'mic' | 'mic:DEVICE' | 'file:PATH[,PATH...]' | 'url:URL' (or a bare http(s) URL) → a spec dict."""
    if text.startswith(("http://", "https://")):
        return {"kind": "stream", "url": text}
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind in ("url", "stream"):
        if not arg:
            raise SourceSpecError("url: needs a stream address, e.g. url:http://radio.example/stream")
        return {"kind": "stream", "url": arg}
    if kind == "demo":
        return {"kind": "demo"}
    if kind == "mic":
        spec = {"kind": "mic"}
        if arg:
            spec["device"] = int(arg) if arg.isdigit() else arg
        return spec
    if kind == "file":
        if not arg:
            raise SourceSpecError("file: needs a path, e.g. file:/music/track.flac")
        return {"kind": "file", "paths": arg.split(",")}
    raise SourceSpecError(f"unknown source {text!r}: use demo, mic[:DEVICE], file:PATH or url:URL")


def shorten_label(text: str, keep_end: str = "") -> str:
    """A display name cut to ``MAX_LABEL_CHARS`` with an ellipsis, ``keep_end`` (an extension) kept."""
    if len(text) <= MAX_LABEL_CHARS:
        return text
    keep_end = keep_end if text.endswith(keep_end) and len(keep_end) < 20 else ""
    return text[:MAX_LABEL_CHARS - len(keep_end) - 1] + "…" + keep_end


def make_source(spec: dict, *, fast: bool = False) -> Source:
    """Build (not start) the source a spec describes; its label at most ``MAX_LABEL_CHARS`` long."""
    source = _build_source(spec, fast)
    # Names derived from a long path or URL are display names too (the dashboard, thread names).
    source.label = shorten_label(str(source.label or ""), Path(str(source.label or "")).suffix)
    return source


def _build_source(spec: dict, fast: bool) -> Source:
    if not isinstance(spec, dict):
        raise SourceSpecError("a source must be an object with a 'kind'")
    kind = spec.get("kind")
    output = spec.get("output_device")
    if output is not None and not isinstance(output, (int, str)):
        raise SourceSpecError("'output_device' must be a device index or name")
    if kind == "demo":
        from .audio.file_source import FileSource

        return FileSource(demo_playlist(), loop=True, realtime=not fast, output_device=output,
                          label=spec.get("label") or "Demo playlist")
    if kind == "file":
        from .audio.file_source import FileSource

        paths = spec.get("paths") or ([spec["path"]] if spec.get("path") else [])
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise SourceSpecError("a file source needs a 'path'")
        for p in paths:
            if not os.path.isfile(p):
                raise SourceSpecError(f"no such file: {p}")
        label = spec.get("label") or (Path(paths[0]).name if len(paths) == 1 else f"{len(paths)} files")
        return FileSource(paths, loop=bool(spec.get("loop", False)), realtime=not fast, output_device=output,
                          label=label)
    if kind == "mic":
        from .audio.mic_source import MicSource

        device = spec.get("device")
        if device is not None and not isinstance(device, (int, str)):
            raise SourceSpecError("'device' must be a device index or name")
        rate = spec.get("samplerate")
        if rate is not None and not (isinstance(rate, (int, float)) and 1000 <= rate <= 384000):
            raise SourceSpecError("'samplerate' must be a number of Hz between 1000 and 384000")
        return MicSource(device=device, samplerate=int(rate) if rate else None)
    if kind == "stream":
        from .audio.stream_source import StreamError, StreamSource

        url = spec.get("url")
        if not isinstance(url, str) or not url.strip():
            raise SourceSpecError("a stream source needs a 'url'")
        try:
            return StreamSource(url.strip(), label=spec.get("label"))
        except (StreamError, ValueError) as exc:
            raise SourceSpecError(str(exc)) from None
    raise SourceSpecError(f"unknown source kind {kind!r}: use demo, file, mic or stream")


def source_id_for(spec: dict, taken: set[str]) -> str:
    """A readable id that stays the same across restarts, so history lines up.

    ``spec["id"]`` when given; else kind plus a slug of the file, device or URL
    ("stream-radio-example-org-live"), with a counter when that is taken.
    """
    wanted = spec.get("id")
    if wanted is not None:
        if not isinstance(wanted, str) or not _ID_RE.fullmatch(wanted):
            raise SourceSpecError("a source id is 1–40 letters, digits, '-' or '_'")
        if wanted in taken:
            raise SourceSpecError(f"a source with id {wanted!r} is already running")
        return wanted
    kind = spec.get("kind")
    hint = {"demo": "", "file": spec.get("path") or (spec.get("paths") or [""])[0],
            "mic": str(spec.get("device") or "default"), "stream": spec.get("url", "")}.get(kind, "")
    hint = re.sub(r"^https?://", "", str(hint))
    if kind == "file":
        hint = re.sub(r"\.[a-z0-9]{2,4}$", "", os.path.basename(hint.rstrip("/")))
    base = "-".join(filter(None, [str(kind), re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:28]]))
    source_id, n = base, 1
    while source_id in taken:
        n += 1
        source_id = f"{base}-{n}"
    return source_id
