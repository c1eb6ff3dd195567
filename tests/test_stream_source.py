"""StreamSource against a real local HTTP radio: real MP3 bytes, real ffmpeg."""

import glob
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest

from server.audio.decode import decode
from server.audio.stream_source import StreamError, StreamSource
from tests.support.audio import best_lag_correlation, make_music
from tests.support.http_audio import RadioServer, encode_mp3
from tests.support.processes import pid_alive
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = 12.0
SR = 44100


@pytest.fixture(scope="module")
def mp3(tmp_path_factory):
    """(mp3 bytes, the same mp3 decoded as the reference) from a demo track or synthetic music."""
    demo = sorted(glob.glob(os.path.join(ROOT, "media", "demo", "*.ogg")))
    d = tmp_path_factory.mktemp("radio")
    if demo:
        src = demo[0]
    else:
        import soundfile as sf
        src = str(d / "music.wav")
        sf.write(src, make_music(SR, SECONDS + 10, seed=3), SR)
    data = encode_mp3(src, seconds=SECONDS, offset=10.0 if demo else 0.0)
    (d / "radio.mp3").write_bytes(data)
    ref, sr = decode(str(d / "radio.mp3"))
    assert sr == SR
    return data, ref


@pytest.fixture
def radio(mp3):
    with RadioServer(mp3[0], SECONDS) as server:
        yield server


class Capture:
    def __init__(self):
        self.blocks = []
        self.lock = threading.Lock()

    def __call__(self, block):
        with self.lock:
            self.blocks.append(block)

    @property
    def n(self):
        with self.lock:
            return sum(b.size for b in self.blocks)

    def samples(self, start=0):
        with self.lock:
            x = np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)
        return x[start:]


def matches_reference(x, ref, seconds=2.0):
    """Correlation of ``seconds`` of captured audio with the reference at the best lag."""
    n = int(seconds * SR)
    corr, _ = best_lag_correlation(x[:n], ref)
    return corr


def test_stream_delivers_the_served_music(radio, mp3):
    cap = Capture()
    src = StreamSource(radio.url, label="test radio")
    assert src.kind == "stream" and src.state == "idle"
    src.start(cap)
    try:
        wait_until(lambda: cap.n >= 3 * SR, 15, message=lambda: f"only {cap.n} samples; state {src.state}: {src.error}")
        assert src.state == "running" and src.error is None
        pid = src.pid
        assert pid is not None and pid_alive(pid)
    finally:
        src.stop()
    assert src.state == "stopped"
    assert src.pid is None and not pid_alive(pid), "ffmpeg still running after stop()"
    blocks = cap.blocks
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert {b.size for b in blocks[:-1]} == {int(0.1 * SR)}  # block_seconds at the delivered rate
    assert src.samplerate == SR
    x = cap.samples()
    assert np.isfinite(x).all() and 0.01 < np.abs(x).max() <= 1.5
    assert matches_reference(x, mp3[1]) > 0.95
    d = src.describe()
    assert d["kind"] == "stream" and d["url"] == radio.url and d["reconnects"] == 0 and d["label"] == "test radio"


def test_cut_reconnects_by_itself(radio, mp3):
    cap = Capture()
    states = []
    src = StreamSource(radio.url, max_backoff_s=2.0)
    watcher_stop = threading.Event()

    def watch():  # record every state the dashboard could see
        while not watcher_stop.is_set():
            if not states or states[-1] != src.state:
                states.append(src.state)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    src.start(cap)
    watcher.start()
    try:
        wait_until(lambda: cap.n >= 2 * SR, 15, message=lambda: src.error)
        radio.cut()
        wait_until(lambda: src.state == "reconnecting", 8, message=lambda: f"state {src.state}")
        assert "dropped" in src.notice
        n_cut = cap.n
        time.sleep(1.0)
        assert src.state == "reconnecting"
        assert cap.n == n_cut, "nothing is delivered while reconnecting"
        radio.resume()
        wait_until(lambda: src.state == "running", 10, message=lambda: f"state {src.state}: {src.notice}")
        wait_until(lambda: cap.n >= n_cut + 2 * SR, 10)
    finally:
        src.stop()
        watcher_stop.set()
        watcher.join()
    assert src.reconnects >= 1 and src.describe()["reconnects"] == src.reconnects
    assert src.error is None
    assert states[:4] == ["starting", "running", "reconnecting", "running"]
    # The server starts each connection at the top of the file: the new audio is the music again.
    assert matches_reference(cap.samples(n_cut), mp3[1]) > 0.95


def test_hung_connection_is_noticed(radio):
    cap = Capture()
    src = StreamSource(radio.url, stall_seconds=1.0, max_backoff_s=1.0)
    src.start(cap)
    try:
        wait_until(lambda: cap.n >= 2 * SR, 15, message=lambda: src.error)
        radio.hang()  # connection stays open, no bytes: only a read timeout notices
        wait_until(lambda: src.state == "reconnecting", 10, message=lambda: f"state {src.state}")
        assert "no audio data" in src.notice
        radio.resume()
        wait_until(lambda: src.state == "running" and src.reconnects >= 1, 10, message=lambda: src.notice)
    finally:
        src.stop()
    assert src.state == "stopped"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("which, reason", [
    ("404", "404 Not Found"),
    ("refused", "Connection refused"),
    ("page", "not an audio stream"),
])
def test_never_working_stream_is_an_error(radio, which, reason):
    url = {"404": radio.url_404, "refused": f"http://127.0.0.1:{free_port()}/live",
           "page": radio.url_page}[which]
    src = StreamSource(url)
    src.start(Capture())
    try:
        assert src.wait(15), f"still {src.state} after 15 s"
    finally:
        src.stop()
    assert src.state == "error"
    assert reason in src.error and url in src.error
    assert "\n" not in src.error and len(src.error) < 400


def test_http_file_plays_and_ends_without_reconnect(radio, mp3):
    cap = Capture()
    src = StreamSource(radio.url_file, reconnect=False, realtime=False)
    src.start(cap)
    assert src.wait(15)
    assert src.state == "ended" and src.error is None
    x = cap.samples()
    assert abs(x.size - mp3[1].size) < 0.1 * SR
    assert matches_reference(x, mp3[1]) > 0.95


def test_local_file_only_when_allowed(tmp_path, mp3):
    path = tmp_path / "-looks-like-an-option.mp3"
    path.write_bytes(mp3[0])
    with pytest.raises(StreamError, match="http"):
        StreamSource(str(path))
    with pytest.raises(StreamError, match="not allowed"):
        StreamSource(path.as_uri())
    cap = Capture()
    src = StreamSource(str(path), allow_file=True, reconnect=False, realtime=False)
    src.start(cap)
    assert src.wait(15) and src.state == "ended", src.error
    assert matches_reference(cap.samples(), mp3[1]) > 0.95
    with pytest.raises(StreamError, match="no such file"):
        StreamSource(str(tmp_path / "missing.mp3"), allow_file=True)


@pytest.mark.parametrize("url, message", [
    ("ftp://x", "unsupported URL scheme 'ftp'"),
    ("not a url", "not a URL"),
    ("", "URL is required"),
    ("   ", "URL is required"),
    (None, "URL is required"),
    ("http://", "no host name"),
    ("http://host:99999/x", "invalid port"),
    ("http://host/a b.mp3", "spaces"),
    ("rtsp://cam/live", "unsupported URL scheme"),
    ("-i", "not a URL"),
])
def test_malformed_urls_are_refused(url, message):
    with pytest.raises(StreamError, match=message):
        StreamSource(url)
    assert issubclass(StreamError, ValueError)


def test_password_is_not_shown():
    src = StreamSource("https://user:s3cret@radio.example.com/live.mp3")
    assert "s3cret" not in src.label and "s3cret" not in str(src.describe())
    assert src.describe()["url"] == "https://user:***@radio.example.com/live.mp3"


def test_stop_is_prompt_while_reconnecting(radio):
    src = StreamSource(radio.url, max_backoff_s=30.0)
    cap = Capture()
    src.start(cap)
    wait_until(lambda: src.state == "running", 15, message=lambda: src.error)
    radio.cut()
    wait_until(lambda: src.state == "reconnecting", 8)
    thread = src.thread
    src.stop()
    assert not thread.is_alive(), "stop() must end the thread, not wait out the backoff"
    assert src.state == "stopped" and src.pid is None
    src.stop()  # idempotent
