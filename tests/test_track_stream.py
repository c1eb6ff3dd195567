"""Training and evaluation read tracks as streams: the windows of the whole-file path, in bounded memory."""

import numpy as np
import pytest
import soundfile as sf

from server.audio.decode import decode
from server.stream.features import window_mels
from server.training import augment, track_stream
from server.training.dataset import LIVE_CAPTURE_SR, live_path_windows
from server.training.track_stream import condition_windows, live_windows
from tests.support.audio import make_music


@pytest.fixture(scope="module")
def track(tmp_path_factory):
    path = tmp_path_factory.mktemp("ts") / "song.flac"
    sf.write(path, make_music(22050, 14.0, seed=7), 22050)
    return str(path)


@pytest.mark.parametrize("condition", ["clean", "gain-12", "gain+6", "sr48000", "sr44100", "room", "rand0", "mic1"])
@pytest.mark.parametrize("hop_s", [1.0, 3.0])
def test_condition_windows_are_those_of_the_whole_track(track, condition, hop_s):
    y, sr = decode(track)
    y16, offset = augment.apply(y, sr, condition, "abc", hop_s)
    whole = window_mels(y16, hop_s, offset)
    streamed = np.concatenate(list(condition_windows(track, condition, "abc", hop_s, batch=5)))
    assert streamed.shape == whole.shape
    np.testing.assert_array_equal(streamed, whole)


def test_the_live_condition_streams_through_the_live_path(track):
    y, sr = decode(track)
    mels, streams = live_path_windows(y, sr, "t")
    got = list(live_windows(track, "t", LIVE_CAPTURE_SR, batch=4))
    np.testing.assert_array_equal(np.concatenate([m for m, _ in got]), mels)
    assert [s for _, keys in got for s in keys] == streams


def test_whole_signal_conditions_of_a_long_track_go_segment_by_segment(track):
    # Segments of 5 s: each transformed on its own, the windows continue across them.
    y, sr = decode(track)
    blocks, offset = track_stream.condition_blocks(track, "room", "abc", 3.0, segment_s=5.0)
    y16 = np.concatenate(list(blocks))
    first, first_offset = augment.apply(y[:5 * sr], sr, "room", "abc", 3.0)
    assert offset == first_offset
    np.testing.assert_array_equal(y16[:len(first)], first)
    assert len(y16) == pytest.approx(14.0 * 16000, abs=16)


def test_an_unknown_condition_is_refused_before_reading(tmp_path):
    with pytest.raises(augment.UnknownCondition, match="rand0"):
        track_stream.condition_blocks(str(tmp_path / "never-read.wav"), "underwater")
