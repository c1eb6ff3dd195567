"""Network audio streams (Icecast/Shoutcast, HLS, http(s) files) through ffmpeg.

An ``ffmpeg`` subprocess (an argument list, never a shell) decodes the URL to
float32 mono PCM on its stdout; one thread reads it with ``select`` so a hung
connection is noticed (a read timeout), and delivers fixed-size blocks. When
the stream drops, the thread restarts ffmpeg with exponential backoff; nothing
is delivered meanwhile, so the ring buffer simply waits for the next block.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import numpy as np

from server.audio.source import BlockCallback, Source

# ffmpeg's own reconnect heals short blips inside one process (http/https only);
# our loop around the process handles everything else.
_HTTP_OPTIONS = ["-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_on_network_error", "1",
                 "-reconnect_delay_max", "2",
                 # A playlist or redirect must not make ffmpeg read local files.
                 "-protocol_whitelist", "http,https,tcp,tls,crypto,httpproxy"]
# Attempts a stream that never produced audio gets before it is an error (a typo'd
# URL should fail fast; a stream that has worked is retried forever).
START_ATTEMPTS = 2
# Seconds of audio a connection must deliver before the backoff starts at 1 s again.
BACKOFF_RESET_SECONDS = 10.0
# Paced delivery may run this far ahead of real time (an Icecast burst on
# connect passes at once; an http file is played at real time after it).
MAX_LEAD_SECONDS = 5.0
_STDERR_TAIL_BYTES = 4096

# ffmpeg messages that mean little to a user, reworded.
_FRIENDLY = (
    ("Invalid data found when processing input", "not an audio stream (ffmpeg: invalid data)"),
    ("does not contain any stream", "the stream contains no audio"),
    ("Output file #0 does not contain any stream", "the stream contains no audio"),
    ("Input/output error", "connection lost (ffmpeg: input/output error)"),
    ("Name or service not known", "unknown host name"),
    ("Temporary failure in name resolution", "host name lookup failed"),
)


class StreamError(ValueError):
    """A stream URL is unusable; ``str(err)`` is meant for the user."""


def redact(url: str) -> str:
    """``url`` without a password (``user:secret@host`` → ``user:***@host``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def validate_url(url, allow_file: bool = False) -> str:
    """The ffmpeg input for ``url``, or ``StreamError`` saying why it is unusable.

    http/https URLs need a host; local paths and ``file:`` URLs are accepted
    only with ``allow_file`` (the server must not read its own files for a
    remote user) and become ``file:/abs/path`` so a name starting with ``-`` is
    never taken for an ffmpeg option.
    """
    if not isinstance(url, str) or not url.strip():
        raise StreamError("a stream URL is required (http:// or https://)")
    url = url.strip()
    if any(c.isspace() or ord(c) < 32 for c in url):
        if "://" not in url:
            raise StreamError(f"{url!r} is not a URL; expected http://host/path or https://host/path")
        raise StreamError(f"the URL {url!r} contains spaces or control characters; "
                          "percent-encode them (a space is %20)")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise StreamError(f"the URL {redact(url)!r} has no host name")
        try:
            _ = parts.port  # parsed on access
        except ValueError:
            raise StreamError(f"the URL {redact(url)!r} has an invalid port number") from None
        return url
    is_path = scheme == "" or scheme == "file"
    if is_path and allow_file:
        path = urllib.request.url2pathname(parts.path) if scheme == "file" else url
        if not os.path.isfile(path):
            raise StreamError(f"no such file: {path}")
        return "file:" + os.path.abspath(path)
    if scheme == "file":
        raise StreamError("file: URLs are not allowed for streams; use an http:// or https:// URL "
                          "(or a file source)")
    if scheme == "" or "://" not in url:
        raise StreamError(f"{url!r} is not a URL; expected http://host/path or https://host/path")
    raise StreamError(f"unsupported URL scheme {scheme!r} in {redact(url)!r}: use http:// or https://")


def summarize_ffmpeg_error(stderr: str, url: str = "") -> str:
    """ffmpeg's reason in one readable line (the last message, without prefixes)."""
    lines = [ln.strip() for ln in stderr.splitlines()
             if ln.strip() and not ln.strip().startswith("Last message repeated")]
    if not lines:
        return ""
    line = re.sub(r"^\[[^\]]*@ ?0x[0-9a-f]+\]\s*", "", lines[-1])
    for prefix in (url, "file:" + url, redact(url)):
        if prefix and line.startswith(prefix + ":"):
            line = line[len(prefix) + 1:].strip()
    if line.startswith(("http://", "https://", "file:")) and ": " in line:
        line = line.split(": ", 1)[1]
    for needle, friendly in _FRIENDLY:
        if needle in line:
            return friendly
    return line[:300]


class StreamSource(Source):
    """Live audio from ``url`` (Icecast/Shoutcast, HLS, any http(s) media ffmpeg reads).

    Blocks are float32 mono at ``samplerate`` (ffmpeg resamples), one per
    ``block_seconds``. States: 'starting' until the first audio, 'running',
    'reconnecting' while the stream is down (the process exited, or no data
    for ``stall_seconds``), 'error' when it never produced audio (``error``
    holds ffmpeg's reason), 'ended' when a stream that worked ends and
    ``reconnect`` is False, 'stopped'. Retries wait 1, 2, 4 ... up to
    ``max_backoff_s`` seconds; ``reconnects`` counts the times audio came back.
    With ``realtime`` delivery never runs more than a few seconds ahead of the
    wall clock, so an http *file* plays at its own pace like a radio.
    The constructor raises ``StreamError`` for a malformed or disallowed URL.
    """

    kind = "stream"

    def __init__(self, url, label: str | None = None, reconnect: bool = True, max_backoff_s: float = 30.0,
                 samplerate: int = 44100, allow_file: bool = False, block_seconds: float = 0.1,
                 stall_seconds: float = 10.0, realtime: bool = True):
        self.input = validate_url(url, allow_file=allow_file)
        if block_seconds <= 0:
            raise ValueError("block_seconds must be positive")
        if not 1000 <= int(samplerate) <= 384000:
            raise ValueError("samplerate must be between 1000 and 384000 Hz")
        if max_backoff_s < 1 or stall_seconds <= 0:
            raise ValueError("max_backoff_s must be >= 1 and stall_seconds positive")
        self.url = url.strip()
        super().__init__(label or redact(self.url))
        self.reconnect = bool(reconnect)
        self.max_backoff_s = float(max_backoff_s)
        self.samplerate = int(samplerate)
        self.block_seconds = float(block_seconds)
        self.stall_seconds = float(stall_seconds)
        self.realtime = bool(realtime)
        self.reconnects = 0
        self.samples_delivered = 0
        self.pid: int | None = None  # of the running ffmpeg, for diagnostics and tests
        self._worked = False
        self._proc: subprocess.Popen | None = None
        self._proc_lock = threading.Lock()

    # -- control ------------------------------------------------------------------
    def start(self, on_block: BlockCallback) -> None:
        """Start the reader thread; without ffmpeg, sets ``state='error'`` and returns."""
        self._on_block = on_block
        self._stop_event.clear()
        self.state, self.error, self.notice = "starting", None, None
        self._ffmpeg = shutil.which("ffmpeg")
        if self._ffmpeg is None:
            self._fail("cannot play streams without ffmpeg (install ffmpeg)")
            return
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.label}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Kill ffmpeg and join the thread; safe to call more than once."""
        self._stop_event.set()
        self._kill()
        self._join_thread()
        if self.state in ("starting", "running", "reconnecting"):
            self.state = "stopped"

    def describe(self) -> dict:
        d = super().describe()
        d.update(url=redact(self.url), reconnects=self.reconnects)
        return d

    # -- thread -------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        self.error, self.state = message, "error"

    def _command(self) -> list[str]:
        http = self.input.startswith(("http://", "https://", "HTTP://", "HTTPS://"))
        return [self._ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
                *(_HTTP_OPTIONS if http else []), "-i", self.input,
                "-vn", "-f", "f32le", "-ac", "1", "-ar", str(self.samplerate), "pipe:1"]

    def _run(self) -> None:
        backoff, failures = 1.0, 0
        while not self._stop_event.is_set():
            got, reason = self._attempt()
            if self._stop_event.is_set():
                return
            if got >= BACKOFF_RESET_SECONDS * self.samplerate:
                backoff = 1.0
            if not self._worked:
                failures += 1
                if not self.reconnect or failures >= START_ATTEMPTS:
                    self._fail(f"could not play {redact(self.url)}: {reason}")
                    return
                self.notice = f"{reason}; retrying in {backoff:g} s"
            elif not self.reconnect:
                if reason == "stream ended":
                    self.state = "ended"
                else:
                    self._fail(f"stream {redact(self.url)} dropped: {reason}")
                return
            else:
                self.state = "reconnecting"
                self.notice = f"stream dropped ({reason}); reconnecting in {backoff:g} s"
            if self._stop_event.wait(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff_s)

    def _attempt(self) -> tuple[int, str]:
        """Run ffmpeg once; returns (samples delivered, why it ended)."""
        try:
            proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        except OSError as e:
            return 0, f"could not run ffmpeg: {e}"
        with self._proc_lock:
            self._proc, self.pid = proc, proc.pid
        if self._stop_event.is_set():  # stop() ran before we published the process
            self._kill()
        err = bytearray()
        try:
            got, stalled = self._pump(proc, err)
        finally:
            self._kill()
            proc.wait()
            _drain(proc.stderr.fileno(), err)
            proc.stdout.close()
            proc.stderr.close()
            with self._proc_lock:
                self._proc, self.pid = None, None
        if stalled:
            return got, f"no audio data for {self.stall_seconds:g} s (connection hung?)"
        reason = summarize_ffmpeg_error(err.decode("utf-8", "replace"), self.input)
        if reason:
            return got, reason
        if proc.returncode not in (0, -9):
            return got, f"ffmpeg exited with status {proc.returncode}"
        return got, "stream ended" if got else "the stream ended without any audio"

    def _pump(self, proc: subprocess.Popen, err: bytearray) -> tuple[int, bool]:
        """Read ffmpeg's output until EOF, a stall or stop; returns (samples, stalled)."""
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        fds = [out_fd, err_fd]
        nbytes = max(1, int(round(self.block_seconds * self.samplerate))) * 4
        buf = bytearray()
        got = 0
        last_data = t_conn = time.monotonic()
        while not self._stop_event.is_set():
            ready, _, _ = select.select(fds, [], [], 0.2)
            if err_fd in ready and not _drain(err_fd, err, once=True):
                fds.remove(err_fd)
            if out_fd in ready:
                chunk = os.read(out_fd, 1 << 16)
                if not chunk:
                    break
                last_data = time.monotonic()
                buf += chunk
                while len(buf) >= nbytes and not self._stop_event.is_set():
                    block = np.frombuffer(bytes(buf[:nbytes]), dtype="<f4").astype(np.float32)
                    del buf[:nbytes]
                    got += self._deliver(block, t_conn, got)
            elif time.monotonic() - last_data > self.stall_seconds:
                return got, True
        usable = len(buf) - len(buf) % 4
        if usable and not self._stop_event.is_set():  # the tail of a stream that ended
            got += self._deliver(np.frombuffer(bytes(buf[:usable]), dtype="<f4").astype(np.float32),
                                 t_conn, got)
        return got, False

    def _deliver(self, block: np.ndarray, t_conn: float, got: int) -> int:
        if self.realtime:
            # Due time counted from the connection, so sleep jitter never drifts.
            due = t_conn + (got + block.size) / self.samplerate - MAX_LEAD_SECONDS
            delay = due - time.monotonic()
            if delay > 0 and self._stop_event.wait(delay):
                return 0
        if not np.isfinite(block).all():
            block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
        if self.state != "running":
            if self.state == "reconnecting":
                self.reconnects += 1
                self.notice = f"reconnected (reconnect #{self.reconnects})"
            elif self.notice and "retrying" in self.notice:
                self.notice = None
            self._worked = True
            self.state = "running"
        try:
            self._on_block(block)
        except Exception as e:  # a consumer bug must not look like a network problem
            self._fail(f"block consumer failed: {e}")
            self._stop_event.set()
            return 0
        self.samples_delivered += block.size
        return block.size

    def _kill(self) -> None:
        with self._proc_lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass


def _drain(fd: int, err: bytearray, once: bool = False) -> bool:
    """Append what ``fd`` has to ``err`` (keeping only the tail); False at EOF."""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        err += chunk
        if len(err) > _STDERR_TAIL_BYTES:
            del err[:len(err) - _STDERR_TAIL_BYTES]
        if once:
            return True
