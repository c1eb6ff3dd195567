"""PortAudio device listing and lookup by index, name or name fragment.

sounddevice is imported lazily: it needs the PortAudio shared library, and a
server without it must still start (files and streams work without it).
"""

from __future__ import annotations

import threading

HOW_TO_LIST = "run `python run.py devices` to see the available devices"

# Streams currently open through this module's users; a rescan would close them.
_open_streams = 0
_lock = threading.Lock()


class DeviceError(Exception):
    """An audio device could not be found or used; ``str(err)`` is for the user."""


def sounddevice():
    """The ``sounddevice`` module, or ``DeviceError`` when PortAudio is unavailable."""
    try:
        import sounddevice as sd
    except OSError as e:  # sounddevice raises OSError when libportaudio is missing
        raise DeviceError(f"audio devices are unavailable: PortAudio could not be loaded ({e}); "
                          "install libportaudio2") from None
    return sd


def stream_opened() -> None:
    global _open_streams
    with _lock:
        _open_streams += 1


def stream_closed() -> None:
    global _open_streams
    with _lock:
        _open_streams = max(0, _open_streams - 1)


def rescan() -> bool:
    """Re-enumerate devices (PortAudio lists them once, at initialisation).

    Needed to see devices or sound servers that appeared after startup.
    Re-initialising PortAudio closes every open stream, so this does nothing
    and returns False while a stream is open.
    """
    sd = sounddevice()
    with _lock:
        if _open_streams:
            return False
        sd._terminate()
        sd._initialize()
    return True


def _hostapi_names(sd) -> list[str]:
    return [h["name"] for h in sd.query_hostapis()]


def _default_index(sd, kind: str) -> int | None:
    idx = sd.default.device[0 if kind == "input" else 1]
    if idx is None or idx < 0:
        try:
            idx = sd.query_devices(kind=kind)["index"]
        except (sd.PortAudioError, ValueError):
            return None
    return int(idx)


def _list(kind: str) -> list[dict]:
    sd = sounddevice()
    apis = _hostapi_names(sd)
    default = _default_index(sd, kind)
    key = f"max_{kind}_channels"
    out = []
    for d in sd.query_devices():
        if d[key] > 0:
            out.append({
                "index": int(d["index"]),
                "name": d["name"],
                "hostapi": apis[d["hostapi"]] if d["hostapi"] < len(apis) else str(d["hostapi"]),
                key: int(d[key]),
                "default_samplerate": float(d["default_samplerate"]),
                "is_default": int(d["index"]) == default,
            })
    return out


def list_input_devices() -> list[dict]:
    """``[{index, name, hostapi, max_input_channels, default_samplerate, is_default}]``."""
    return _list("input")


def list_output_devices() -> list[dict]:
    """``[{index, name, hostapi, max_output_channels, default_samplerate, is_default}]``."""
    return _list("output")


def _resolve(spec, kind: str) -> int:
    devices = _list(kind)
    if spec is None or spec == "" or spec == "default":
        for d in devices:
            if d["is_default"]:
                return d["index"]
        if devices:
            return devices[0]["index"]
        raise DeviceError(f"no audio {kind} device found; {HOW_TO_LIST}")
    if isinstance(spec, str) and spec.strip().lstrip("-").isdigit():
        spec = int(spec.strip())
    if isinstance(spec, int):
        for d in devices:
            if d["index"] == spec:
                return spec
        raise DeviceError(f"there is no audio {kind} device with index {spec}; {HOW_TO_LIST}")
    exact = [d for d in devices if d["name"] == spec]
    if exact:
        return exact[0]["index"]
    low = str(spec).lower()
    matches = [d for d in devices if low in d["name"].lower()]
    if len(matches) == 1:
        return matches[0]["index"]
    if not matches:
        raise DeviceError(f"no audio {kind} device matches {spec!r}; {HOW_TO_LIST}")
    names = ", ".join(f"{d['index']}: {d['name']}" for d in matches)
    raise DeviceError(f"{spec!r} matches several {kind} devices ({names}); "
                      "give the index or the full name")


def resolve_input_device(spec=None) -> int:
    """Index of the input device named by ``spec``: None (default), an index, an
    exact name or a unique case-insensitive name fragment such as ``'pulse'``."""
    return _resolve(spec, "input")


def resolve_output_device(spec=None) -> int:
    """Like ``resolve_input_device`` for output devices."""
    return _resolve(spec, "output")
