"""One source's path from captured blocks to model-ready windows.

The source's thread calls ``on_block`` (a copy into the ring buffer, nothing
slow). The worker calls ``next_window`` each tick; it returns the newest due
window's log-mel features, cut from the source's frame stream
(``server.stream.frames``: every window on one frame grid), with the spectrogram
columns not shown yet.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..audio.ringbuffer import RingBuffer
from ..audio.source import Source
from ..config import (FIRST_WINDOW_SECONDS, HOP_LENGTH, MODEL_SR, N_FFT, N_MELS, RING_SECONDS, WINDOW_FRAMES,
                     WINDOW_SAMPLES)
from .features import log_compress, mel_to_db
from .frames import FrameStream
from .scheduler import WindowScheduler

# Extra past audio read when a frame stream (re)starts, so the resampler's edge
# transient falls outside the frames we keep.
_RESAMPLE_MARGIN_S = 0.02
# Samples beyond this magnitude are corrupt (a float stream gone wrong), not loud
# music; clipping them keeps the mel power finite (+24 dBFS of headroom).
MAX_ABS_SAMPLE = 16.0


@dataclass
class Window:
    source_id: str
    t: float                  # stream time (s) of the window's last sample
    wall: float               # unix time when that sample was captured
    mel: np.ndarray           # (187, 96) model input
    spec_times: np.ndarray    # centre times of the new display columns
    spec_db: np.ndarray       # (n, 96) dB of the new display columns
    level_db: float = -120.0  # RMS level of the window, dBFS
    stream: tuple | None = None  # (stream key, index of the first frame on its frame grid)
    audio: np.ndarray | None = None  # native audio new since the previous window (or all of it), for the tempo
    end: int = 0              # absolute native index one past the window's last sample
    sr: int = 0               # the native sample rate


class Pipeline:
    """Ring buffer, scheduler and feature extraction for one source.

    Blocks with NaN/Inf or absurd values are repaired on arrival (set to 0 /
    clipped, counted in ``repaired_blocks``) so one bad burst never poisons a window.

    ``fault_hook`` (None in normal use) is for fault injection by tests and
    ``scripts/qa/soak.py``: ``fault_hook(stage, data)`` is called with
    ``("block", block)`` on the capture thread before repair (return a
    replacement block, or None to keep it) and with ``("window", native)`` on the
    worker with the window's audio before feature extraction (return value
    ignored); raising there behaves like a bug in that stage.
    """

    def __init__(self, source_id: str, source: Source, hop_s: float, wake: threading.Event | None = None):
        """``source.realtime is False`` (a file read as fast as possible) makes the pipeline
        lossless: the source's thread waits for the worker instead of overwriting audio."""
        self.source_id = source_id
        self.source = source
        self.hop_s = float(hop_s)
        self.windows = 0
        self.ring: RingBuffer | None = None
        self.scheduler: WindowScheduler | None = None
        self._wake = wake
        self._last_wall = 0.0
        self._last_col_time = -math.inf
        self._native_window = 0
        self._native_margin = 0
        self._window_end = 0  # the previous window's end (absolute native index)
        self.lossless = getattr(source, "realtime", True) is False
        self._consumed = threading.Condition()
        self._ring_sr = 0
        self._frames: FrameStream | None = None
        self._power = np.zeros((0, N_MELS), np.float32)  # newest settled frames of the stream
        self._epoch = 0
        self.repaired_blocks = 0
        self.failed = False  # set by the engine when this pipeline raised; it is then left alone
        self.fault_hook = None

    # --- capture side (source thread) ---------------------------------------------------------
    def start(self) -> None:
        self.source.start(self.on_block)

    def stop(self) -> None:
        self.source.stop()

    def on_block(self, block: np.ndarray) -> None:
        hook = self.fault_hook
        if hook is not None:
            replaced = hook("block", block)
            block = block if replaced is None else replaced
        block = self._repair(block)
        sr = int(self.source.samplerate)
        if self.ring is None or sr != self._ring_sr:  # a device that came back at another rate
            self._init_ring(sr)
        if self.lossless:
            self._wait_for_room(len(block))
        self.ring.write(block)
        self._last_wall = time.time()
        # Wake the worker only when a window is due, not on every 25-ms block.
        if self._wake is not None and self.ring.total_written >= self.scheduler.next_end:
            self._wake.set()

    def _wait_for_room(self, n: int) -> None:
        """Block the (non-real-time) writer until writing ``n`` samples loses nothing unread."""
        ring, scheduler = self.ring, self.scheduler
        oldest_needed = lambda: scheduler.next_end - self._native_window - self._native_margin
        with self._consumed:
            while (ring.total_written + n - ring.capacity > oldest_needed()
                   and self.source.state not in ("stopped", "error")):
                if self._wake is not None:
                    self._wake.set()
                self._consumed.wait(0.1)

    def _repair(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        # min/max propagate NaN, so two reductions (no temporary) cover NaN, Inf and range.
        if block.size == 0 or (-MAX_ABS_SAMPLE <= block.min() and block.max() <= MAX_ABS_SAMPLE):
            return block
        self.repaired_blocks += 1
        block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
        return np.clip(block, -MAX_ABS_SAMPLE, MAX_ABS_SAMPLE)

    def _init_ring(self, sr: int) -> None:
        self._ring_sr = sr
        self._native_window = math.ceil(WINDOW_SAMPLES * sr / MODEL_SR)
        self._native_margin = math.ceil(_RESAMPLE_MARGIN_S * sr) + FrameStream.grid(sr)
        hop = max(1, round(self.hop_s * sr))
        capacity = max(int(RING_SECONDS * sr), self._native_window + self._native_margin + 2 * hop)
        self.scheduler = WindowScheduler(window=self._native_window, hop=hop, lossless=self.lossless,
                                         first=math.ceil(FIRST_WINDOW_SECONDS * sr))
        self.ring = RingBuffer(capacity)

    # --- worker side -----------------------------------------------------------------------------
    @property
    def skipped(self) -> int:
        return self.scheduler.skipped if self.scheduler else 0

    def restart_schedule(self) -> None:
        """Jump to the newest data without counting skips."""
        if self.ring is not None and not self.lossless:
            self.scheduler.restart_at(self.ring.total_written)

    def next_window(self) -> Window | None:
        ring, scheduler = self.ring, self.scheduler
        if ring is None:
            return None
        # Lossless: the window is cut holding the writer's condition. ``poll`` moves ``next_end``
        # past this window, which frees the room the writer waits for; a writer re-checking
        # before the audio is read (on a notify or its 0.1-s timeout) would overwrite it.
        with self._consumed if self.lossless else contextlib.nullcontext():
            written, wall = ring.total_written, self._last_wall
            end = scheduler.poll(written)
            if end is None:
                return None
            sr = self._ring_sr
            n = min(self._native_window, end)
            try:
                native = ring.read(end, n)
                hook = self.fault_hook
                if hook is not None:
                    hook("window", native)
                settled, provisional = self._advance(end)
            except IndexError:  # overwritten meanwhile: the writer lapped us
                scheduler.skipped += 1
                self._frames = None
                return None
            finally:
                if self.lossless:
                    self._consumed.notify_all()
        self._power = np.concatenate([self._power, settled])[-WINDOW_FRAMES:]
        power = np.concatenate([self._power, provisional])[-WINDOW_FRAMES:]
        frames = self._frames
        last = frames.settled_frames + provisional.shape[0]  # one past the window's last frame
        if power.shape[0] < WINDOW_FRAMES:  # the stream's first seconds: silence before it
            power = np.concatenate([np.zeros((WINDOW_FRAMES - power.shape[0], N_MELS), np.float32), power])
        self.windows += 1

        first = last - WINDOW_FRAMES
        t_end = end / sr  # the frames end on their grid, within one frame (16 ms) before this
        centres = frames.native_index((first + np.arange(WINDOW_FRAMES)) * HOP_LENGTH + N_FFT / 2) / sr
        new = centres > self._last_col_time + 1e-6
        if new.any():
            self._last_col_time = float(centres[new][-1])
        return Window(
            source_id=self.source_id,
            t=t_end,
            wall=wall - (written - end) / sr,
            mel=log_compress(power),
            spec_times=centres[new],
            spec_db=mel_to_db(power[new]),
            level_db=rms_dbfs(native),
            stream=(self._stream_key(), first),
            audio=self._new_audio(native, end), end=end, sr=sr,
        )

    def _new_audio(self, native: np.ndarray, end: int) -> np.ndarray:
        """The samples of ``native`` (ending at ``end``) after the previous window's end; all of them
        after a gap. A copy, so that the window does not hold the whole window's audio."""
        new, self._window_end = end - self._window_end, end
        return native[-new:].copy() if 0 < new < native.shape[0] else native

    def _stream_key(self) -> str:
        return f"{self.source_id}#{self._epoch}"

    def owns_stream(self, key) -> bool:
        """Whether ``key`` (a ``Window.stream`` key) is one of this source's streams, of any epoch."""
        return isinstance(key, str) and key.rpartition("#")[0] == self.source_id

    def _advance(self, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames of the audio up to ``end``; (re)starts the frame stream when it has a gap."""
        oldest = end - self._native_window - self._native_margin
        frames = self._frames
        if frames is None or frames.native_end < oldest or frames.sr != self._ring_sr:
            # A jump ahead (skips, a restart, a hop longer than a window): frame only what
            # this window needs, from a point on the grid shared by both sample rates.
            grid = FrameStream.grid(self._ring_sr)
            origin = max(0, oldest, self.ring.total_written - self.ring.capacity)
            self._frames = frames = FrameStream(self._ring_sr, -(-origin // grid) * grid)
            self._power = self._power[:0]
            self._epoch += 1
        return frames.advance(end, self.ring.read)


class PushSource:
    """A source whose blocks the caller pushes into the pipeline itself (``live_windows``, benchmarks)."""

    realtime = True
    state = "running"

    def __init__(self, samplerate: int):
        self.samplerate = int(samplerate)


def live_windows(y: np.ndarray, sr: int, hop_s: float = 1.0, source_id: str = "offline"):
    """Yield the windows the live path makes from audio ``y`` arriving one hop at a time.

    The same ring buffer, scheduler and frame stream as a live source, without the
    clock: for evaluating the live path offline. Each window carries its stream key.
    """
    pipeline = Pipeline(source_id, PushSource(sr), hop_s=hop_s)
    step = max(1, int(round(hop_s * sr)))
    for start in range(0, len(y), step):
        pipeline.on_block(y[start:start + step])
        while (w := pipeline.next_window()) is not None:
            yield w


def rms_dbfs(y: np.ndarray) -> float:
    """RMS level in dB relative to a full-scale square wave, floored at -120 dB."""
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    return round(max(-120.0, 20.0 * np.log10(max(rms, 1e-6))), 2)
