"""Property tests: whatever bytes a file holds, decode() and classify_file() give audio or a DecodeError.

Random bytes, random truncations and random header mutations of real WAV,
FLAC and OGG files (written by soundfile here) go through the real decoders
(libsndfile, and ffmpeg for what it rejects). Never another exception, never a hang.
"""

import io
import os
import tempfile

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.audio.decode import DecodeError, decode
from tests.support.audio import make_music

SR = 22050
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _encode(fmt: str, subtype: str | None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, make_music(sr=SR, seconds=0.5, channels=2), SR, format=fmt, subtype=subtype)
    return buf.getvalue()


VALID = {"wav": _encode("WAV", "FLOAT"), "flac": _encode("FLAC", "PCM_16"), "ogg": _encode("OGG", "VORBIS")}


def _decode_bytes(data: bytes, ext: str):
    fd, path = tempfile.mkstemp(suffix="." + ext)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            y, sr = decode(path)
        except DecodeError as e:
            assert str(e), "a DecodeError must say why"
            return None
    finally:
        os.unlink(path)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.ndim == 1 and y.size > 0
    assert np.isfinite(y).all()
    assert isinstance(sr, int) and sr > 0
    return y, sr


@FUZZ
@given(data=st.binary(min_size=0, max_size=4096), ext=st.sampled_from(["wav", "flac", "ogg", "mp3"]))
def test_random_bytes(data, ext):
    _decode_bytes(data, ext)


@FUZZ
@given(fmt=st.sampled_from(sorted(VALID)), cut=st.floats(0.0, 1.0))
def test_random_truncation(fmt, cut):
    data = VALID[fmt]
    _decode_bytes(data[:int(len(data) * cut)], fmt)


@FUZZ
@given(fmt=st.sampled_from(sorted(VALID)),
       edits=st.lists(st.tuples(st.integers(0, 127), st.integers(0, 255)), min_size=1, max_size=8))
def test_random_header_mutations(fmt, edits):
    data = bytearray(VALID[fmt])
    for pos, byte in edits:  # the first 128 bytes hold the headers of all three formats
        data[pos] = byte
    _decode_bytes(bytes(data), fmt)


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(VALID)), cut=st.floats(0.05, 1.0),
       edits=st.lists(st.tuples(st.integers(0, 127), st.integers(0, 255)), max_size=4))
def test_classify_file_on_damaged_files(model, tmp_path, fmt, cut, edits):
    from server.classify import classify_file

    data = bytearray(VALID[fmt][:int(len(VALID[fmt]) * cut)])
    for pos, byte in edits:
        if pos < len(data):
            data[pos] = byte
    path = tmp_path / f"damaged.{fmt}"
    path.write_bytes(bytes(data))
    try:
        r = classify_file(str(path), model)
    except DecodeError as e:
        assert str(e)
        return
    probs = np.array(list(r["probabilities"].values()))
    assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-3
    assert r["padded"] is True  # every variant is shorter than 3 s
