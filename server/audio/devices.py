"""PortAudio device listing and lookup by index, name or name fragment.

sounddevice is imported lazily: it needs the PortAudio shared library, and a
server without it must still start (files and streams work without it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
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
                "loopback": False,
            })
    return out


def list_input_devices() -> list[dict]:
    """``[{index, name, hostapi, max_input_channels, default_samplerate, is_default, loopback}]``.

    PortAudio's devices first, then the sound server's loopback sources
    (``index`` None; capture one with ``MicSource(device=entry["device"])``).
    """
    return _list("input") + list_loopback_sources()


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


# -- loopback: what this computer is playing -------------------------------------------------
LOOPBACK_PREFIX = "loopback:"
# PULSE_SOURCE is process-wide and read by the ALSA pulse plugin when a stream
# opens; every MicSource open holds this lock so loopback opens don't leak into others.
_pulse_env_lock = threading.Lock()


def _pulse_reachable() -> bool:
    """A PulseAudio/PipeWire server seems to be there (checked without autospawning one)."""
    if shutil.which("pactl") is None:
        return False
    if os.environ.get("PULSE_SERVER"):
        return True
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return os.path.exists(os.path.join(runtime, "pulse", "native"))


def _parse_sinks(text: str) -> list[dict]:
    sinks, cur = [], None
    for line in text.splitlines():
        if line.startswith("Sink #"):
            cur = {}
            sinks.append(cur)
        elif cur is not None and ":" in line and line.startswith("\t") and not line.startswith("\t\t"):
            key, _, value = line.strip().partition(":")
            cur.setdefault(key.strip(), value.strip())
    return sinks


def list_loopback_sources() -> list[dict]:
    """Monitor sources of the PulseAudio/PipeWire sinks (what the computer plays).

    PortAudio only sees the ALSA 'pulse' device, not individual monitors, so ask
    ``pactl``. Returns [] when there is no pactl or no server answers.
    """
    if not _pulse_reachable():
        return []
    try:
        out = subprocess.run(["pactl", "list", "sinks"], capture_output=True, text=True, timeout=3,
                             env=dict(os.environ, LC_ALL="C"), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    entries = []
    for sink in _parse_sinks(out.stdout):
        monitor = sink.get("Monitor Source")
        if not monitor:
            continue
        spec = re.search(r"(\d+)ch (\d+)Hz", sink.get("Sample Specification", ""))
        entries.append({
            "index": None,
            "name": monitor,
            "label": f"What this computer is playing ({sink.get('Description') or sink.get('Name') or monitor})",
            "hostapi": "PulseAudio",
            "max_input_channels": int(spec.group(1)) if spec else 2,
            "default_samplerate": float(spec.group(2)) if spec else 44100.0,
            "is_default": False,
            "loopback": True,
            "pulse_source": monitor,
            "device": LOOPBACK_PREFIX + monitor,
        })
    return entries


def loopback_source(spec) -> str | None:
    """The pulse source named by a device spec ``'loopback:<name>'`` or
    ``{"pulse_source": name}`` (a ``list_input_devices`` entry), else None."""
    if isinstance(spec, dict):
        name = spec.get("pulse_source")
    elif isinstance(spec, str) and spec.startswith(LOOPBACK_PREFIX):
        name = spec[len(LOOPBACK_PREFIX):].strip()
    else:
        return None
    return name if isinstance(name, str) and name else None


def pulse_source_exists(name: str) -> bool | None:
    """Whether the sound server has a source ``name``; None when it can't be asked."""
    if not _pulse_reachable():
        return None
    try:
        out = subprocess.run(["pactl", "list", "short", "sources"], capture_output=True, text=True,
                             timeout=3, env=dict(os.environ, LC_ALL="C"), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return any(ln.split("\t")[1:2] == [name] for ln in out.stdout.splitlines())


def resolve_pulse_device() -> int:
    """Index of PortAudio's ALSA 'pulse' device, through which loopback sources are captured."""
    for d in _list("input"):
        if d["name"] == "pulse":
            return d["index"]
    raise DeviceError("capturing what this computer plays needs the ALSA 'pulse' device "
                      "(install libasound2-plugins and run PulseAudio or PipeWire)")


@contextlib.contextmanager
def pulse_source_env(name: str | None):
    """Hold the open lock; with ``name``, set ``PULSE_SOURCE`` for the duration."""
    with _pulse_env_lock:
        if name is None:
            yield
            return
        saved = os.environ.get("PULSE_SOURCE")
        os.environ["PULSE_SOURCE"] = name
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("PULSE_SOURCE", None)
            else:
                os.environ["PULSE_SOURCE"] = saved
