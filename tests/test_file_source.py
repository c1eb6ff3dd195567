"""FileSource on real files: pacing by sample counts, fast mode, looping, bad files, stop."""

import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import soxr

from server.audio.file_source import FileSource
from tests.support.audio import best_lag_correlation, make_music


class Collector:
    """on_block callback that keeps everything and can wait for a sample count."""

    def __init__(self, stop_after=None):
        self.blocks = []
        self.n = 0
        self.stop_after = stop_after
        self.enough = threading.Event()

    def __call__(self, block):
        assert block.dtype == np.float32 and block.ndim == 1
        self.blocks.append(block.copy())
        self.n += block.size
        if self.stop_after is not None and self.n >= self.stop_after:
            self.enough.set()

    def samples(self):
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fs")
    a = make_music(8000, 2.0, seed=1)
    b = make_music(16000, 1.5, seed=2, bpm=100)
    sf.write(d / "a.wav", a, 8000, subtype="FLOAT")
    sf.write(d / "b.flac", b, 16000)
    (d / "bad.mp3").write_text("not audio at all\n" * 50)
    return d, a, b


def test_realtime_pacing_delivers_about_elapsed_time(files):
    d, a, _ = files
    col = Collector()
    src = FileSource([d / "a.wav"], loop=True, realtime=True, block_seconds=0.05)
    src.start(col)
    try:
        assert src.samplerate == 8000 and src.state == "running"
        time.sleep(1.0)
        n = col.n
    finally:
        src.stop()
    # Paced like a live input: about one second of audio after one second
    # (generous bounds: a loaded CI machine can sleep late).
    assert 0.5 * 8000 <= n <= 1.6 * 8000, n
    assert max(b.size for b in col.blocks) <= 0.05 * 8000 + 1
    assert src.state == "stopped"


def test_realtime_plays_whole_file_once_then_ends(files):
    d, a, _ = files
    col = Collector()
    src = FileSource([d / "a.wav"], loop=False, realtime=True, block_seconds=0.1)
    t0 = time.monotonic()
    src.start(col)
    assert src.wait(timeout=15)
    elapsed = time.monotonic() - t0
    assert src.state == "ended" and src.error is None
    np.testing.assert_array_equal(col.samples(), a)
    assert elapsed > 1.5  # sanity: it was paced, not dumped (the file is 2 s)
    assert src.position_seconds == pytest.approx(2.0) and src.current_file.endswith("a.wav")


def test_fast_mode_delivers_everything_unpaced(tmp_path):
    y = make_music(22050, 30.0, seed=3)
    path = tmp_path / "long.flac"
    sf.write(path, y, 22050)
    col = Collector()
    src = FileSource([path], loop=False, realtime=False, block_seconds=0.5)
    src.start(col)
    assert src.wait(timeout=20), "30 s of audio in fast mode should not take real time"
    assert src.state == "ended"
    np.testing.assert_allclose(col.samples(), y, atol=1e-4)
    assert len(col.blocks) == 60  # streamed in 0.5-s blocks, not loaded whole


def test_loop_repeats_the_playlist(files):
    d, a, _ = files
    col = Collector(stop_after=int(3.5 * a.size))
    src = FileSource([d / "a.wav"], loop=True, realtime=False)
    src.start(col)
    assert col.enough.wait(10)
    src.stop()
    x = col.samples()
    for k in range(3):
        np.testing.assert_array_equal(x[k * a.size:(k + 1) * a.size], a)
    assert src.state == "stopped"


def test_bad_file_is_skipped_with_notice_and_rates_are_unified(files):
    d, a, b = files
    col = Collector()
    src = FileSource([d / "a.wav", d / "bad.mp3", d / "b.flac"], loop=False, realtime=False)
    src.start(col)
    assert src.wait(timeout=10)
    assert src.state == "ended", src.error
    assert src.samplerate == 8000  # the first file's rate for the whole playlist
    assert src.notice.startswith("skipped bad.mp3:") and "not a decodable audio file" in src.notice
    assert [p.split("/")[-1] for p in src.skipped_files] == ["bad.mp3"]
    x = col.samples()
    np.testing.assert_array_equal(x[:a.size], a)
    tail = x[a.size:]
    b8 = soxr.resample(b, 16000, 8000)
    assert abs(tail.size - b8.size) <= 2
    corr, lag = best_lag_correlation(tail, b8, max_lag=50)
    assert corr > 0.99 and lag == 0


def test_first_file_bad_takes_rate_from_next(files):
    d, _, b = files
    col = Collector()
    src = FileSource([d / "bad.mp3", d / "b.flac"], loop=False, realtime=False)
    src.start(col)
    assert src.wait(timeout=10)
    assert src.samplerate == 16000 and src.state == "ended"
    np.testing.assert_allclose(col.samples(), b, atol=1e-4)


def test_all_files_bad_is_an_error(tmp_path, files):
    d, _, _ = files
    src = FileSource([d / "bad.mp3", tmp_path / "missing.ogg"], loop=True)
    src.start(Collector())
    assert src.state == "error"
    assert "bad.mp3 is not a decodable audio file" in src.error
    assert "missing.ogg: file not found" in src.error
    src.stop()
    assert src.state == "error"


def test_file_that_fails_while_looping_ends_in_error_not_a_spin(tmp_path):
    # Header says audio, body has none: probing succeeds, decoding yields nothing.
    path = tmp_path / "hollow.wav"
    sf.write(path, np.zeros(10, np.float32), 8000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44])
    src = FileSource([path], loop=True, realtime=False)
    src.start(Collector())
    assert src.wait(timeout=5)
    assert src.state == "error" and "contains no audio samples" in src.error


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_ffmpeg_only_format_in_playlist(tmp_path, files):
    d, a, _ = files
    y = make_music(44100, 1.0, seed=5)
    sf.write(tmp_path / "c.wav", y, 44100)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(tmp_path / "c.wav"),
                    "-c:a", "aac", str(tmp_path / "c.m4a")], check=True, timeout=60)
    col = Collector()
    src = FileSource([d / "a.wav", tmp_path / "c.m4a"], loop=False, realtime=False)
    src.start(col)
    assert src.wait(timeout=10) and src.state == "ended" and src.notice is None
    tail = col.samples()[a.size:]
    ref = soxr.resample(y, 44100, 8000)
    assert best_lag_correlation(tail, ref, max_lag=400)[0] > 0.95


def test_stop_stops_delivery_promptly(files):
    d, _, _ = files
    col = Collector()
    src = FileSource([d / "a.wav"], loop=True, realtime=True, block_seconds=0.1)
    src.start(col)
    time.sleep(0.3)
    src.stop()
    n = col.n
    time.sleep(0.3)
    assert col.n == n and src.state == "stopped"
    assert src.thread is None
    src.stop()  # idempotent


def test_consumer_exception_becomes_error_state(files):
    d, _, _ = files

    def broken(block):
        raise RuntimeError("ring buffer on fire")

    src = FileSource([d / "a.wav"], realtime=False)
    src.start(broken)
    assert src.wait(timeout=5)
    assert src.state == "error" and "ring buffer on fire" in src.error


def test_missing_output_device_is_a_notice_not_a_crash(files):
    d, a, _ = files
    col = Collector(stop_after=800)
    src = FileSource([d / "a.wav"], realtime=True, output_device="no such speaker", block_seconds=0.05)
    src.start(col)
    try:
        assert col.enough.wait(5)
    finally:
        src.stop()
    assert src.notice.startswith("audible playback disabled:")
    assert src.error is None


def test_describe_reports_position(files):
    d, _, _ = files
    src = FileSource([d / "a.wav"], loop=False, realtime=False, label="Demo")
    src.start(Collector())
    src.wait(5)
    info = src.describe()
    assert info["kind"] == "file" and info["label"] == "Demo" and info["samplerate"] == 8000
    assert info["current_file"] == "a.wav" and info["position"] == pytest.approx(2.0)
