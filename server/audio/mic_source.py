"""Microphone / line-in capture through PortAudio (sounddevice ``InputStream``).

PortAudio calls our callback from its own thread with each block; the callback
only down-mixes and hands the block on. A small watchdog thread notices when
the stream dies (device unplugged, sound server gone) and sets ``state='error'``.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from server.audio import devices
from server.audio.devices import DeviceError  # noqa: F401  (re-exported: callers catch it from here)
from server.audio.source import BlockCallback, Source

_PA_INVALID_SAMPLE_RATE = -9997
_PA_INVALID_CHANNEL_COUNT = -9998
# Without callbacks for this long (and at least STALL_BLOCKS blocks) the device is
# gone. Some servers take ~2 s to deliver the first block, hence the start grace.
STALL_SECONDS = 3.0
STALL_BLOCKS = 20
START_GRACE_SECONDS = 8.0


def _pa_code(err) -> int | None:
    args = getattr(err, "args", ())
    return args[1] if len(args) > 1 and isinstance(args[1], int) else None


def _is_rate_error(err) -> bool:
    return _pa_code(err) == _PA_INVALID_SAMPLE_RATE or "Invalid sample rate" in str(err)


def _is_channel_error(err) -> bool:
    return _pa_code(err) == _PA_INVALID_CHANNEL_COUNT or "Invalid number of channels" in str(err)


class MicSource(Source):
    """Live input from ``device`` (None = default, index, name or name fragment, or a
    loopback source: ``'loopback:<pulse monitor name>'`` or a loopback entry of
    ``devices.list_input_devices()``, captured through the ALSA 'pulse' device).

    ``samplerate`` None means the device's default rate; a rate the device
    rejects falls back to the default with ``notice`` set. ``channels`` None
    records up to two channels; blocks are always down-mixed to mono.
    ``start`` raises ``DeviceError`` when the device can't be found or opened.
    """

    kind = "mic"

    def __init__(self, device=None, samplerate: int | None = None, channels: int | None = None,
                 block_seconds: float = 0.05, label: str | None = None):
        self.pulse_source = devices.loopback_source(device)
        if label is None and self.pulse_source:
            label = (device.get("label") if isinstance(device, dict) else None) or \
                f"What this computer is playing ({self.pulse_source})"
        super().__init__(label or (f"Input: {device}" if device not in (None, "") else "Default input"))
        self.device = device
        self.requested_samplerate = samplerate
        self.requested_channels = channels
        self.block_seconds = float(block_seconds)
        self.channels: int | None = None
        self.device_name: str | None = None
        self.blocks = 0  # callbacks received
        self._stream = None
        self._watchdog: threading.Thread | None = None
        self._last_callback = 0.0
        self._registered = False

    # -- PortAudio thread ---------------------------------------------------------
    def _callback(self, indata, frames, time_info, status):
        self._last_callback = time.monotonic()
        if status.input_overflow:
            self.overflows += 1
        block = self.to_mono(indata)
        if np.shares_memory(block, indata):  # PortAudio reuses indata after we return
            block = block.copy()
        self.blocks += 1
        try:
            self._on_block(block)
        except Exception as e:  # a consumer bug must not kill PortAudio's thread silently
            self._fail(f"block consumer failed: {e}")
            raise devices.sounddevice().CallbackAbort from None

    def _finished(self):
        if not self._stop_event.is_set() and self.state == "running":
            self._fail(f"input stream from {self.device_name} stopped unexpectedly "
                       "(device disconnected?)")

    # -- control ------------------------------------------------------------------
    def _open(self, sd, index: int, rate: int, channels: int):
        # The ALSA pulse plugin reads PULSE_SOURCE when the stream opens.
        with devices.pulse_source_env(self.pulse_source):
            return sd.InputStream(device=index, samplerate=rate, channels=channels, dtype="float32",
                                  blocksize=max(1, int(round(rate * self.block_seconds))),
                                  callback=self._callback, finished_callback=self._finished)

    def start(self, on_block: BlockCallback) -> None:
        sd = devices.sounddevice()
        self._on_block = on_block
        self._stop_event.clear()
        self.state, self.error, self.notice = "starting", None, None
        try:
            if self.pulse_source:
                if devices.pulse_source_exists(self.pulse_source) is False:
                    raise DeviceError(f"the sound server has no source named {self.pulse_source!r}; "
                                      f"{devices.HOW_TO_LIST}")
                index = devices.resolve_pulse_device()
            else:
                index = devices.resolve_input_device(self.device)
            info = sd.query_devices(index)
            self.device_name = f"{info['name']}: {self.pulse_source}" if self.pulse_source else info["name"]
            default_rate = int(round(info["default_samplerate"]))
            rate = int(self.requested_samplerate or default_rate)
            channels = int(self.requested_channels or max(1, min(2, info["max_input_channels"])))
            stream = self._open_with_fallbacks(sd, index, rate, channels, default_rate)
        except DeviceError as e:
            self.state, self.error = "error", str(e)
            raise
        self._stream = stream
        self.samplerate = int(round(stream.samplerate))
        self.channels = stream.channels
        self._last_callback = time.monotonic()
        devices.stream_opened()
        self._registered = True
        try:
            stream.start()
        except sd.PortAudioError as e:
            self._close_stream()
            self.state, self.error = "error", f"could not start {self.device_name}: {e}"
            raise DeviceError(self.error) from None
        self.state = "running"
        self._watchdog = threading.Thread(target=self._watch, name=f"mic-watchdog-{index}", daemon=True)
        self._watchdog.start()

    def _open_with_fallbacks(self, sd, index, rate, channels, default_rate):
        name = self.device_name
        try:
            return self._open(sd, index, rate, channels)
        except sd.PortAudioError as e:
            if _is_rate_error(e) and rate != default_rate:
                self.notice = (f"{name} does not support {rate} Hz; "
                               f"recording at its default {default_rate} Hz instead")
                rate = default_rate
            elif _is_channel_error(e) and self.requested_channels is None and channels != 1:
                channels = 1
            else:
                raise DeviceError(f"could not open input device {name!r} at {rate} Hz, "
                                  f"{channels} channel(s): {e}") from None
        try:
            return self._open(sd, index, rate, channels)
        except sd.PortAudioError as e:
            raise DeviceError(f"could not open input device {name!r} at {rate} Hz, "
                              f"{channels} channel(s): {e}") from None

    def _watch(self) -> None:
        stall = max(STALL_SECONDS, STALL_BLOCKS * self.block_seconds)
        while not self._stop_event.wait(0.2):
            stream = self._stream
            if stream is None or self.state != "running":
                return
            if not stream.active:
                self._fail(f"input stream from {self.device_name} stopped (device disconnected?)")
                return
            quiet = time.monotonic() - self._last_callback
            if quiet > (stall if self.blocks else START_GRACE_SECONDS):
                self._fail(f"no audio from {self.device_name} for {quiet:.1f} s "
                           "(device unplugged or sound server gone?)")
                return

    def _fail(self, message: str) -> None:
        if self.state != "error":
            self.error = message
            self.state = "error"

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except Exception:  # closing a dead device can fail; we are done with it anyway
                pass
        if self._registered:
            self._registered = False
            devices.stream_closed()

    def stop(self) -> None:
        """Stop capturing and release the device; safe to call more than once."""
        self._stop_event.set()
        self._close_stream()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=2)
        self._watchdog = None
        if self.state in ("running", "starting"):
            self.state = "stopped"

    def describe(self) -> dict:
        d = super().describe()
        d.update(device=self.device_name, channels=self.channels)
        return d
