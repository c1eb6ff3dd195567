"""A local "internet radio" for stream tests: real MP3 bytes, looped forever.

``RadioServer(mp3_bytes)`` listens on 127.0.0.1 (a free port) in a thread:

  ``/stream``     endless stream of the MP3, paced at its bitrate after a short
                  burst (like Icecast); every connection starts at the beginning
  ``/file.mp3``   the MP3 once, with Content-Length (a plain http file)
  ``/page``       an HTML page (200, but not audio)
  anything else   404

Controls: ``cut()`` drops the current connections and answers new ones with
503 until ``resume()``; ``hang()`` keeps connections open but sends nothing
until ``resume()``. ``close()`` (or the context manager) stops everything.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def encode_mp3(path, seconds: float = 20.0, offset: float = 10.0, samplerate: int = 44100,
               bitrate: str = "128k") -> bytes:
    """An excerpt of ``path`` as mono CBR MP3 bytes, encoded by the real ffmpeg.

    No ID3 tag or Xing header, so the bytes can be repeated back to back.
    """
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-ss", str(offset), "-t", str(seconds),
           "-i", str(path), "-ac", "1", "-ar", str(samplerate), "-c:a", "libmp3lame", "-b:a", bitrate,
           "-write_xing", "0", "-id3v2_version", "0", "-f", "mp3", "pipe:1"]
    out = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    if out.returncode != 0 or not out.stdout:
        raise RuntimeError(f"ffmpeg could not encode {path}: {out.stderr.decode(errors='replace')}")
    return out.stdout


class RadioServer:
    """See the module docstring. ``url``, ``url_404``, ``url_file``, ``url_page``."""

    def __init__(self, data: bytes, seconds: float, burst_seconds: float = 1.0, chunk_seconds: float = 0.05):
        self.data = data
        self.bytes_per_second = len(data) / seconds
        self.burst = int(burst_seconds * self.bytes_per_second)
        self.chunk = max(1, int(chunk_seconds * self.bytes_per_second))
        self.connections = 0  # /stream requests answered with 200
        self._mode = "on"  # 'on' | 'cut' | 'hang'
        self._generation = 0  # bumped by cut(): older connections end
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        base = f"http://127.0.0.1:{self.port}"
        self.url, self.url_404 = base + "/stream", base + "/missing.mp3"
        self.url_file, self.url_page = base + "/file.mp3", base + "/page"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="radio-server", daemon=True)
        self._thread.start()

    # -- controls -----------------------------------------------------------------
    def cut(self) -> None:
        """Drop every open connection and answer new ones with 503 until ``resume``."""
        with self._lock:
            self._mode = "cut"
            self._generation += 1
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def hang(self) -> None:
        """Keep connections open but stop sending (a stalled network)."""
        with self._lock:
            self._mode = "hang"

    def resume(self) -> None:
        with self._lock:
            self._mode = "on"

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- serving ------------------------------------------------------------------
    def _handler_class(self):
        radio = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path == "/stream":
                    radio._serve_stream(self)
                elif path == "/file.mp3":
                    self._send(200, "audio/mpeg", radio.data)
                elif path == "/page":
                    self._send(200, "text/html", b"<html><body><h1>Not a radio</h1></body></html>\n" * 50)
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, code, ctype, body):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _serve_stream(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            mode, gen = self._mode, self._generation
            if mode != "cut":
                self._socks.add(h.connection)
        if mode == "cut":
            h.send_response(503)
            h.send_header("Content-Type", "text/plain")
            h.end_headers()
            h.wfile.write(b"stream unavailable\n")
            return
        self.connections += 1
        try:
            h.send_response(200)
            h.send_header("Content-Type", "audio/mpeg")
            h.send_header("icy-name", "Genre Monitor test radio")
            h.end_headers()
            pos, sent, t0 = 0, 0, time.monotonic()
            while not self._closed.is_set():
                with self._lock:
                    if self._generation != gen:
                        return
                    hanging = self._mode == "hang"
                if hanging:
                    time.sleep(0.05)
                    t0 += 0.05  # a hang delays the schedule instead of causing a burst after
                    continue
                due = t0 + max(0, sent + self.chunk - self.burst) / self.bytes_per_second
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(min(delay, 0.1))
                    continue
                end = min(pos + self.chunk, len(self.data))
                h.wfile.write(self.data[pos:end])
                sent += end - pos
                pos = end % len(self.data)
        except OSError:  # the client went away or cut() shut the socket
            pass
        finally:
            with self._lock:
                self._socks.discard(h.connection)
