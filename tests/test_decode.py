"""decode/open_blocks on real files written by soundfile and encoded by real ffmpeg."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from server.audio.decode import DecodeError, decode, open_blocks, probe, probe_duration
from tests.support.audio import best_lag_correlation, make_music

SR = 22050
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


@pytest.fixture(scope="module")
def music():
    return make_music(SR, 3.0, seed=1)


@pytest.fixture(scope="module")
def wav(tmp_path_factory, music):
    path = tmp_path_factory.mktemp("dec") / "music.wav"
    sf.write(path, music, SR, subtype="PCM_16")
    return path


def _ffmpeg_encode(src, dst, *codec):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), *codec, str(dst)],
                   check=True, timeout=60)


@pytest.mark.parametrize("fmt,subtype,min_corr", [
    ("wav", "PCM_16", 0.999), ("wav", "FLOAT", 0.999), ("flac", "PCM_24", 0.999), ("ogg", "VORBIS", 0.97),
])
def test_soundfile_formats_roundtrip(tmp_path, music, fmt, subtype, min_corr):
    path = tmp_path / f"m.{fmt}"
    sf.write(path, music, SR, subtype=subtype)
    x, sr = decode(path)
    assert sr == SR and x.dtype == np.float32 and x.ndim == 1
    assert abs(x.size - music.size) < SR * 0.05
    corr, lag = best_lag_correlation(x, music, max_lag=SR // 10)
    assert corr > min_corr and lag == 0


@needs_ffmpeg
def test_mp3_encoded_by_ffmpeg(tmp_path, wav, music):
    path = tmp_path / "m.mp3"
    _ffmpeg_encode(wav, path, "-c:a", "libmp3lame", "-b:a", "128k")
    x, sr = decode(path)
    assert sr == SR
    corr, lag = best_lag_correlation(x, music, max_lag=SR // 10)
    assert corr > 0.95, corr
    assert abs(lag) < SR // 20  # encoder delay is a few ms, not more
    assert probe_duration(path) == pytest.approx(3.0, abs=0.1)


@needs_ffmpeg
def test_ffmpeg_fallback_for_formats_libsndfile_cannot_read(tmp_path, wav, music):
    path = tmp_path / "m.m4a"
    _ffmpeg_encode(wav, path, "-c:a", "aac", "-b:a", "128k")
    assert probe(path)["backend"] == "ffmpeg"
    x, sr = decode(path)
    assert sr == SR
    corr, _ = best_lag_correlation(x, music, max_lag=SR // 10)
    assert corr > 0.95, corr


@pytest.mark.parametrize("rate", [8000, 96000])
def test_native_rate_is_kept(tmp_path, rate):
    y = make_music(rate, 2.0, seed=2)
    path = tmp_path / f"r{rate}.flac"
    sf.write(path, y, rate)
    x, sr = decode(path)
    assert sr == rate and x.size == y.size
    assert best_lag_correlation(x, y, max_lag=10)[0] > 0.999


@needs_ffmpeg
def test_mp3_at_8k_via_ffmpeg(tmp_path):
    y = make_music(8000, 2.0, seed=3)
    src, dst = tmp_path / "low.wav", tmp_path / "low.mp3"
    sf.write(src, y, 8000)
    _ffmpeg_encode(src, dst, "-c:a", "libmp3lame", "-ar", "8000")
    x, sr = decode(dst)
    assert sr == 8000
    assert best_lag_correlation(x, y, max_lag=800)[0] > 0.9


def test_multichannel_is_averaged_to_mono(tmp_path):
    y = make_music(SR, 2.0, channels=4, seed=4)
    path = tmp_path / "quad.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    x, sr = decode(path)
    assert x.shape == (y.shape[0],)
    np.testing.assert_allclose(x, y.mean(axis=1), atol=1e-6)


def test_nan_and_inf_become_silence(tmp_path, music):
    y = music.copy()
    y[100:110] = np.nan
    y[200] = np.inf
    y[300] = -np.inf
    path = tmp_path / "bad.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    x, _ = decode(path)
    assert np.isfinite(x).all()
    assert not x[100:110].any() and x[200] == 0 and x[300] == 0
    np.testing.assert_array_equal(x[1000:2000], music[1000:2000])


def test_open_blocks_streams_in_order(wav, music):
    sr, blocks = open_blocks(wav, block_frames=4096)
    parts = list(blocks)
    assert sr == SR
    assert all(p.size == 4096 for p in parts[:-1]) and 0 < parts[-1].size <= 4096
    np.testing.assert_allclose(np.concatenate(parts), music, atol=1 / 32768 + 1e-6)


@needs_ffmpeg
def test_open_blocks_ffmpeg_streams_and_closes(tmp_path, wav):
    path = tmp_path / "m.m4a"
    _ffmpeg_encode(wav, path, "-c:a", "aac")
    sr, blocks = open_blocks(path, block_frames=1000)
    first = next(blocks)
    assert sr == SR and first.shape == (1000,)
    blocks.close()  # kills ffmpeg rather than leaving it blocked on a full pipe


# --- bad input: every case is a DecodeError whose message names the file --------

def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match=r"nothere\.wav: file not found"):
        decode(tmp_path / "nothere.wav")


def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.flac"
    path.write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty\.flac is empty"):
        decode(path)


def test_folder(tmp_path):
    with pytest.raises(DecodeError, match="is a folder"):
        decode(tmp_path)


@needs_ffmpeg
def test_text_file_named_mp3(tmp_path):
    path = tmp_path / "x.mp3"
    path.write_text("this is a shopping list, not a song\n" * 20)
    with pytest.raises(DecodeError, match=r"^x\.mp3 is not a decodable audio file"):
        decode(path)


@needs_ffmpeg
def test_random_bytes(tmp_path):
    path = tmp_path / "noise.flac"
    path.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(DecodeError, match=r"^noise\.flac is not a decodable audio file"):
        decode(path)


def test_header_only_wav(tmp_path, wav):
    path = tmp_path / "header.wav"
    path.write_bytes(wav.read_bytes()[:44])
    with pytest.raises(DecodeError, match=r"header\.wav contains no audio samples"):
        decode(path)


def test_truncated_wav_keeps_the_decodable_part(tmp_path, wav, music):
    data = wav.read_bytes()
    path = tmp_path / "half.wav"
    path.write_bytes(data[:44 + (len(data) - 44) // 2])
    x, sr = decode(path)
    assert sr == SR and abs(x.size - music.size // 2) < 10
    assert best_lag_correlation(x, music[:x.size], max_lag=0)[0] > 0.999
