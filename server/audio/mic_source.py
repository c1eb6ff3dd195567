"""Microphone / line-in capture through PortAudio (sounddevice ``InputStream``).

PortAudio calls our callback from its own thread with each block; the callback
only down-mixes and hands the block on. A small watchdog thread notices when
the stream dies (device unplugged, sound server gone), sets ``state='lost'``
and tries to reopen the device with backoff until it is back (``'running'``).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from server.audio import devices
from server.audio.devices import DeviceError as DeviceError  # re-exported: callers catch it from here
from server.audio.source import BlockCallback, Source

_PA_INVALID_SAMPLE_RATE = -9997
_PA_INVALID_CHANNEL_COUNT = -9998
# Without callbacks for this long (and at least STALL_BLOCKS blocks) the device is
# gone. Some servers take ~2 s to deliver the first block, hence the start grace.
STALL_SECONDS = 3.0
STALL_BLOCKS = 20
START_GRACE_SECONDS = 8.0
# A lost device is retried after 1, 2, 4 ... seconds, at most this far apart.
RETRY_MAX_SECONDS = 8.0


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

    States: 'starting', 'running', 'lost' (the device vanished mid-stream; it
    is reopened every few seconds, ``notice`` says so, ``reopens`` counts the
    returns), 'error' (a consumer bug), 'stopped'.
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
        self._index: int | None = None
        self._died: str | None = None  # set from PortAudio's finished callback
        self._open_blocks = 0          # callbacks since the current stream opened
        self.reopens = 0

    # -- PortAudio thread ---------------------------------------------------------
    def _callback(self, indata, frames, time_info, status):
        self._last_callback = time.monotonic()
        if status.input_overflow:
            self.overflows += 1
        block = self.to_mono(indata)
        if np.shares_memory(block, indata):  # PortAudio reuses indata after we return
            block = block.copy()
        self.blocks += 1
        self._open_blocks += 1
        try:
            self._on_block(block)
        except Exception as e:  # a consumer bug must not kill PortAudio's thread silently
            self._fail(f"block consumer failed: {e}")
            raise devices.sounddevice().CallbackAbort from None

    def _finished(self):
        if not self._stop_event.is_set() and self.state == "running":
            # The watchdog acts on it: PortAudio's thread must not reopen streams.
            self._died = f"input stream from {self.device_name} stopped unexpectedly (device disconnected?)"

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
        self._index = index
        try:
            self._run_stream(sd, stream)
        except sd.PortAudioError as e:
            self.state, self.error = "error", f"could not start {self.device_name}: {e}"
            raise DeviceError(self.error) from None
        self._watchdog = threading.Thread(target=self._watch, name=f"mic-watchdog-{index}", daemon=True)
        self._watchdog.start()

    def _run_stream(self, sd, stream) -> None:
        """Publish and start an opened stream; closes it again if it will not start."""
        self._stream = stream
        self.samplerate = int(round(stream.samplerate))
        self.channels = stream.channels
        self._died, self._open_blocks = None, 0
        self._last_callback = time.monotonic()
        devices.stream_opened()
        self._registered = True
        try:
            stream.start()
        except sd.PortAudioError:
            self._close_stream()
            raise
        self.state = "running"

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
        """Watch the stream; when it dies, mark the source lost and reopen until it is back."""
        while not self._stop_event.is_set():
            reason = self._watch_stream()
            if reason is None or self._stop_event.is_set():
                return
            self._lose(reason)
            if not self._reopen():
                return

    def _watch_stream(self) -> str | None:
        """Wait while the stream runs; the reason it died, or None on stop/error."""
        stall = max(STALL_SECONDS, STALL_BLOCKS * self.block_seconds)
        while not self._stop_event.wait(0.2):
            stream = self._stream
            if stream is None or self.state != "running":
                return None
            if self._died:
                return self._died
            if not stream.active:
                return f"input stream from {self.device_name} stopped (device disconnected?)"
            quiet = time.monotonic() - self._last_callback
            if quiet > (stall if self._open_blocks else START_GRACE_SECONDS):
                return (f"no audio from {self.device_name} for {quiet:.1f} s "
                        "(device unplugged or sound server gone?)")
        return None

    def _lose(self, reason: str) -> None:
        self.state = "lost"
        self.notice = f"{reason}; trying to reopen it"
        self._close_stream()

    def _reopen(self) -> bool:
        """Reopen the device every 1, 2, 4 ... s (at most RETRY_MAX_SECONDS apart); True once back."""
        sd = devices.sounddevice()
        delay = 1.0
        while not self._stop_event.wait(delay):
            try:
                stream = self._reopen_once(sd)
                self._run_stream(sd, stream)
            except (DeviceError, sd.PortAudioError, OSError) as e:
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                self.notice = f"{self.device_name} is still unavailable ({e}); retrying in {delay:g} s"
                continue
            if self._stop_event.is_set():  # stop() raced the reopen: release the device again
                self._close_stream()
                return False
            self.reopens += 1
            self.notice = f"{self.device_name} is back (reopened {self.reopens}×)"
            return True
        return False

    def _reopen_once(self, sd):
        """Open the same device (found again by name, its index may have changed) at the same rate."""
        name = self.device_name
        if self.pulse_source:
            index = devices.resolve_pulse_device()
        else:
            try:
                index = devices.resolve_input_device(name or self.device)
            except DeviceError:
                devices.rescan()  # a re-plugged device is new to PortAudio (no-op while streams are open)
                index = devices.resolve_input_device(name or self.device)
        info = sd.query_devices(index)
        rate = int(self.samplerate or round(info["default_samplerate"]))
        try:
            return self._open(sd, index, rate, int(self.channels or 1))
        except sd.PortAudioError as e:
            if not _is_rate_error(e):
                raise
            # Back at another rate: the pipeline starts a new ring at the new rate.
            return self._open(sd, index, int(round(info["default_samplerate"])), int(self.channels or 1))

    def _fail(self, message: str) -> None:
        if self.state != "error":  # the first failure is the one to report
            self.fail(message)

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
        if self.state in ("running", "starting", "lost"):
            self.state = "stopped"

    def describe(self) -> dict:
        d = super().describe()
        d.update(device=self.device_name, channels=self.channels, reopens=self.reopens)
        return d
