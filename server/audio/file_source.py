"""Playback of a playlist of files as a live source.

A thread streams each file through ``decode.open_blocks`` (never the whole
file in memory), resamples it to the first file's rate, and delivers blocks
either paced like a live input (``realtime=True``) or as fast as the consumer
takes them. Optionally the audio is also played on an output device.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import soxr

from server.audio.decode import DecodeError, open_blocks, probe
from server.audio.source import BlockCallback, Source


DECODE_SECONDS = 0.5


def _name(path: str) -> str:
    return os.path.basename(path) or path


class FileSource(Source):
    """Plays ``paths`` in order (looping when ``loop``), one block per ``block_seconds``.

    25-ms blocks by default, like a sound card: a window's last sample waits at most
    one block before the worker sees it, which keeps window-end-to-client latency low.

    ``samplerate`` is the rate of the first decodable file; later files are
    resampled to it. Undecodable files are skipped with ``notice`` set; when no
    file decodes, ``state`` becomes 'error'. ``position_seconds`` and
    ``current_file`` tell where playback is.
    """

    kind = "file"

    def __init__(self, paths, loop: bool = True, realtime: bool = True, output_device=None,
                 block_seconds: float = 0.025, label: str | None = None):
        paths = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
        if not paths:
            raise ValueError("FileSource needs at least one file")
        if block_seconds <= 0:
            raise ValueError("block_seconds must be positive")
        super().__init__(label or (_name(paths[0]) if len(paths) == 1 else
                                   f"{len(paths)} files ({_name(paths[0])}, ...)"))
        self.paths = paths
        self.loop = loop
        self.realtime = realtime
        self.output_device = output_device
        self.block_seconds = float(block_seconds)
        self.current_file: str | None = None
        self.position_seconds = 0.0  # within current_file, at the delivered end
        self.samples_delivered = 0
        self.skipped_files: list[str] = []
        self._out = None

    # -- control ------------------------------------------------------------------
    def start(self, on_block: BlockCallback) -> None:
        """Find the source rate from the first decodable file and start the thread.

        When no file can even be opened, sets ``state='error'`` and returns
        without a thread (the caller reads ``error``).
        """
        self._on_block = on_block
        self._stop_event.clear()
        self.state, self.error, self.notice = "starting", None, None
        reasons = []
        for path in self.paths:
            try:
                self.samplerate = probe(path)["samplerate"]
                break
            except DecodeError as e:
                reasons.append(str(e))
        if self.samplerate is None:
            self._fail("no playable file: " + "; ".join(reasons))
            return
        self.state = "running"
        self._thread = threading.Thread(target=self._run, name=f"file-source-{self.label}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop delivering and join the thread; safe to call more than once."""
        self._stop_event.set()
        self._join_thread()
        self._close_output()
        if self.state in ("running", "starting"):
            self.state = "stopped"

    # -- thread -------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        self.error, self.state = message, "error"

    def _run(self) -> None:
        self._open_output()
        self._t0 = time.monotonic()
        try:
            while not self._stop_event.is_set():
                played, reasons = 0, []
                for path in self.paths:
                    if self._stop_event.is_set():
                        return
                    try:
                        played += self._play_file(path)
                    except DecodeError as e:
                        reasons.append(str(e))
                        if path not in self.skipped_files:
                            self.skipped_files.append(path)
                        self.notice = f"skipped {_name(path)}: {e}"
                    except _ConsumerError as e:
                        self._fail(f"block consumer failed: {e.__cause__}")
                        return
                if played == 0:  # nothing decodable: looping would spin forever
                    if not self._stop_event.is_set():
                        self._fail("no playable file: " + "; ".join(reasons))
                    return
                if not self.loop:
                    self.state = "ended"
                    return
        finally:
            self._close_output()

    def _play_file(self, path: str) -> int:
        """Deliver one file; returns the number of samples delivered."""
        # Decode in chunks of at least half a second (per-call decoder overhead is
        # large), deliver in blocks of ``block_seconds``.
        rate = self._rate_of(path)
        sr_in, chunks = open_blocks(path, max(1, int(rate * max(self.block_seconds, DECODE_SECONDS))))
        resampler = None
        if sr_in != self.samplerate:
            resampler = soxr.ResampleStream(sr_in, self.samplerate, 1, dtype="float32")
        self.current_file, self.position_seconds = path, 0.0
        step = max(1, int(round(self.block_seconds * self.samplerate)))
        n_file = 0
        try:
            for chunk in chunks:
                if resampler is not None:
                    chunk = resampler.resample_chunk(chunk)
                for i in range(0, chunk.size, step):
                    n_file += self._deliver(chunk[i:i + step])
                    self.position_seconds = n_file / self.samplerate
                    if self._stop_event.is_set():
                        return n_file
            if resampler is not None:
                n_file += self._deliver(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
                self.position_seconds = n_file / self.samplerate
        finally:
            chunks.close()
        return n_file

    def _rate_of(self, path: str) -> int:
        try:
            return probe(path)["samplerate"]
        except DecodeError:
            return self.samplerate  # open_blocks will raise the real reason

    def _deliver(self, block: np.ndarray) -> int:
        n = block.size
        if n == 0:
            return 0
        if self.realtime:
            # Due time from the start, not from the previous block, so sleep
            # jitter never accumulates into drift.
            due = self._t0 + (self.samples_delivered + n) / self.samplerate
            delay = due - time.monotonic()
            if delay > 0 and self._stop_event.wait(delay):
                return 0
        try:
            self._on_block(block)
        except Exception as e:
            raise _ConsumerError() from e
        self.samples_delivered += n
        self._play(block)
        return n

    # -- optional audible playback (best effort) ---------------------------------
    def _open_output(self) -> None:
        if self.output_device is None or not self.realtime:
            return
        try:
            self._out = _Player(self.output_device, self.samplerate)
        except Exception as e:  # playback is a nicety; analysis goes on without it
            self._out = None
            self.notice = f"audible playback disabled: {e}"

    def _play(self, block: np.ndarray) -> None:
        out = self._out
        if out is None:
            return
        if out.error:
            self._close_output()
            self.notice = f"audible playback stopped: {out.error}"
        else:
            out.push(block)

    def _close_output(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            out.close()

    def describe(self) -> dict:
        d = super().describe()
        d.update(current_file=self.current_file and _name(self.current_file),
                 position=round(self.position_seconds, 3), skipped_files=len(self.skipped_files))
        return d


class _ConsumerError(Exception):
    """The on_block callback raised; wraps it so it is not mistaken for a decode error."""


class _Player:
    """Plays pushed blocks on an output device from PortAudio's callback.

    Decoupled through a queue so a slow or stalling device never delays the
    analysis blocks; on underrun it plays silence, and it drops the oldest
    audio rather than let latency grow past ``max_queue_seconds``.
    """

    def __init__(self, device, samplerate: int, max_queue_seconds: float = 1.0,
                 prebuffer_seconds: float = 0.3):
        from collections import deque

        from server.audio import devices
        sd = devices.sounddevice()
        self._queue: deque[np.ndarray] = deque()
        self._queued = 0
        self._max = int(max_queue_seconds * samplerate)
        # Blocks arrive exactly on time; a jitter buffer keeps a late one from
        # becoming an audible gap. Refilled after every underrun.
        self._prebuffer = int(prebuffer_seconds * samplerate)
        self._primed = False
        self._lock = threading.Lock()
        self.error: str | None = None
        index = devices.resolve_output_device(device)
        self._stream = sd.OutputStream(device=index, samplerate=samplerate, channels=1,
                                       dtype="float32", callback=self._callback,
                                       finished_callback=self._finished)
        self._stream.start()

    def push(self, block: np.ndarray) -> None:
        with self._lock:
            self._queue.append(block)
            self._queued += block.size
            while self._queued - self._queue[0].size >= self._max:
                self._queued -= self._queue.popleft().size

    def _callback(self, outdata, frames, time_info, status):
        out = outdata[:, 0]
        filled = 0
        with self._lock:
            if not self._primed and self._queued >= self._prebuffer:
                self._primed = True
            while self._primed and filled < frames and self._queue:
                head = self._queue[0]
                take = min(frames - filled, head.size)
                out[filled:filled + take] = head[:take]
                filled += take
                self._queued -= take
                if take == head.size:
                    self._queue.popleft()
                else:
                    self._queue[0] = head[take:]
            if filled < frames:
                self._primed = False
        out[filled:] = 0.0

    def _finished(self):
        if self.error is None and not getattr(self, "_closing", False):
            self.error = "output stream stopped"

    def close(self) -> None:
        self._closing = True
        try:
            self._stream.abort(ignore_errors=True)
            self._stream.close(ignore_errors=True)
        except Exception:  # a vanished device fails to close; nothing left to release
            pass
