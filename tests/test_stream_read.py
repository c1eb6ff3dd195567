"""Files read as streams: the same samples, windows and classifications as the whole-file path."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from server.audio.decode import DecodeError, decode
from server.audio.resample import resample
from server.audio.stream_read import resampled_blocks, streamed_seconds
from server.audio.window_cutter import WindowCutter
from server.config import MODEL_SR, WINDOW_SAMPLES
from server.stream.features import window_mels, window_starts
from tests.support.audio import make_music

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def _blocks(y, size):
    return (y[i:i + size] for i in range(0, len(y), size))


LENGTHS = [0, 1, 1000, WINDOW_SAMPLES - 1, WINDOW_SAMPLES, WINDOW_SAMPLES + 1, 3 * WINDOW_SAMPLES + 777, 200_000]


@pytest.mark.parametrize("n,block", [(n, b) for n in LENGTHS for b in (997, 65536)] + [(1000, 1), (0, 1)])
@pytest.mark.parametrize("hop,offset", [(16000, 0), (48000, 0), (4000, 0), (60000, 0), (16000, 9000),
                                        (48000, 47999)])
def test_windows_cut_from_a_stream_are_those_of_the_whole_signal(n, hop, offset, block):
    y = np.random.default_rng(n + hop).standard_normal(n).astype(np.float32)
    cutter = WindowCutter(_blocks(y, block), hop, offset)
    got = list(cutter)
    starts = window_starts(n, hop, offset)
    assert [s for s, _ in got] == starts
    for s, w in got:
        np.testing.assert_array_equal(w, y[s:s + WINDOW_SAMPLES])
    assert cutter.n_samples == n


def test_window_cutter_refuses_a_bad_hop():
    with pytest.raises(ValueError):
        WindowCutter([], 0)


@pytest.mark.parametrize("sr,fmt", [(22050, "flac"), (44100, "wav"), (16000, "wav"), (8000, "ogg")])
def test_resampled_stream_equals_the_resampled_whole_file(tmp_path, sr, fmt):
    path = tmp_path / f"m.{fmt}"
    sf.write(path, make_music(sr, 9.0, seed=3), sr)
    y, sr_in = decode(path)
    whole = resample(y, sr_in, MODEL_SR)
    streamed = np.concatenate(list(resampled_blocks(path, MODEL_SR, block_frames=4096)))
    np.testing.assert_array_equal(streamed, whole)
    assert streamed_seconds(path) == pytest.approx(len(y) / sr_in)


@needs_ffmpeg
def test_resampled_stream_through_ffmpeg(tmp_path):
    src = tmp_path / "m.wav"
    sf.write(src, make_music(22050, 5.0, seed=4), 22050)
    dst = tmp_path / "m.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-c:a", "aac", str(dst)],
                   check=True, timeout=60)
    y, sr_in = decode(dst)
    np.testing.assert_array_equal(np.concatenate(list(resampled_blocks(dst, MODEL_SR))), resample(y, sr_in, MODEL_SR))


def test_stream_errors_are_decode_errors(tmp_path):
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"not audio at all" * 100)
    with pytest.raises(DecodeError):
        list(resampled_blocks(bad, MODEL_SR))
    with pytest.raises(DecodeError):
        streamed_seconds(bad)


def test_classify_file_gives_the_whole_file_results(tmp_path):
    from server.classify import BATCH, classify_file
    from server.model.registry import load_model

    model = load_model()
    path = tmp_path / "m.flac"
    sf.write(path, make_music(22050, 40.0, seed=5), 22050)
    result = classify_file(str(path), model, hop_s=1.0)
    # The whole-file path: decode, resample, every window's log-mel, batches of BATCH.
    y, sr = decode(path)
    y16 = resample(y, sr, MODEL_SR)
    mels = window_mels(y16, 1.0)
    probs = np.concatenate([model.analyse(mels[i:i + BATCH]).probs for i in range(0, len(mels), BATCH)])
    assert len(result["timeline"]) == len(mels)
    np.testing.assert_allclose([row["probabilities"] for row in result["timeline"]], probs, atol=6e-5)
    assert result["duration"] == round(len(y16) / MODEL_SR, 3)
    ends = [min(s + WINDOW_SAMPLES, len(y16)) / MODEL_SR for s in window_starts(len(y16), MODEL_SR)]
    assert [row["t"] for row in result["timeline"]] == [round(t, 3) for t in ends]
