"""Live windows on one frame grid, and the front-end work they share done once.

``FrameStream`` must give the frames of the whole stream whatever the chunking;
``TimbralFrontEnd`` must give the Keras port's timbral maps whether or not it
reuses frames; ``StreamLevels`` normalises each frame of a stream once.
"""

import numpy as np
import pytest

from server.audio.resample import resample
from server.config import MODEL_SR
from server.stream.features import log_compress, mel_power
from server.stream.frames import FrameStream
from server.model import fast, musicnn
from server.model.frontend import TimbralFrontEnd
from server.model.level import LEVEL_HOLD_DB, StreamLevels, apply_gain, level_gain_db, normalize_level
from tests.support.audio import make_music
from tests.support.tolerance import LOG_MEL_TERMS, TIMBRAL_TERMS, assert_f32_close, assert_outputs_close, f32_tol

HOP = 62.5  # frames per second: windows at hop 1 s start 62 or 63 frames apart


def _stream_frames(y, sr, ends):
    stream = FrameStream(sr, 0)
    settled, last_provisional = [], None
    for end in ends:
        new, last_provisional = stream.advance(end, lambda e, n: y[e - n:e])
        settled.append(new)
    return np.concatenate(settled), last_provisional, stream


@pytest.mark.parametrize("sr", [16000, 22050, 44100, 48000])
def test_frames_match_the_whole_stream_whatever_the_chunking(sr):
    y = make_music(sr=sr, seconds=6.0, seed=3)
    rng = np.random.default_rng(sr)
    ends = np.sort(rng.integers(sr // 10, len(y), 12)).tolist() + [len(y)]
    settled, provisional, stream = _stream_frames(y, sr, ends)
    whole = log_compress(mel_power(resample(y, sr, MODEL_SR)))
    n = settled.shape[0]
    assert n == stream.settled_frames and n > 0.9 * whole.shape[0] - 3
    # Every settled frame equals the whole-file frame: soxr's edges never leak in.
    assert_f32_close(log_compress(settled), whole[:n], f32_tol(whole[:n], LOG_MEL_TERMS), f"settled frames at {sr} Hz")
    # The provisional frames reach the end of the audio.
    total = n + provisional.shape[0]
    assert total == 1 + (len(y) * MODEL_SR // sr - 512) // 256
    if total > n:  # both end at the same unknown future, so they agree closely
        assert np.abs(log_compress(provisional) - whole[n:total]).max() < 1e-2


def test_a_read_failure_leaves_the_stream_as_it_was():
    sr = 44100
    y = make_music(sr=sr, seconds=3.0, seed=1)
    stream = FrameStream(sr, 0)
    stream.advance(sr, lambda e, n: y[e - n:e])
    before = (stream.settled_frames, stream.settled_end, stream.native_end)

    def lapped(end, n):
        raise IndexError("overwritten")

    with pytest.raises(IndexError):
        stream.advance(2 * sr, lapped)
    assert (stream.settled_frames, stream.settled_end, stream.native_end) == before


# --- the front-end ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def track():
    """Log-mel frames of 12 s of music, and the starts of its windows at hop 1 s."""
    y = make_music(sr=MODEL_SR, seconds=12.0, seed=7)
    mel = log_compress(mel_power(y))
    starts = [int(k * HOP) for k in range(int((mel.shape[0] - 187) / HOP) + 1)]
    return mel, starts


@pytest.fixture(scope="module", params=musicnn.VARIANTS)
def port(request):
    import keras

    model = musicnn.get_backbone(request.param).model
    timbral = keras.Model(model.input, model.get_layer("timbral").output)
    return request.param, timbral


def test_timbral_maps_match_the_keras_port(port, track):
    variant, keras_timbral = port
    mel, starts = track
    windows = np.stack([mel[s:s + 187] for s in starts[:3]])
    frontend = fast.get_backbone(variant, "fast", threads=1).frontend
    got = frontend(windows)
    want = np.asarray(keras_timbral(windows, training=False))
    assert got.shape == want.shape == (3, 187, 408)
    assert_f32_close(got, want, f32_tol(want, TIMBRAL_TERMS), f"{variant} timbral maps")


def test_reused_frames_give_the_same_maps_as_computing_everything(port, track):
    variant, _ = port
    mel, starts = track
    shared = fast.get_backbone(variant, "fast", threads=1).frontend
    live, fresh = (TimbralFrontEnd((shared.scale, shared.shift), shared.run) for _ in range(2))
    for s in starts:
        window = mel[s:s + 187][None]
        want = fresh(window)
        assert_f32_close(live(window, [("radio", s)]), want, f32_tol(want, TIMBRAL_TERMS), f"window at {s}")
    n = len(starts)
    assert fresh.frames_computed == n * 187 and fresh.frames_reused == 0
    # After the first window, only the ~63 new frames and the 6 edge frames are computed.
    assert live.frames_computed <= 187 + (n - 1) * (63 + 6 + 1)
    assert live.frames_reused >= (n - 1) * (187 - 63 - 6 - 1)


def test_changed_rows_are_recomputed_not_reused(port, track):
    variant, _ = port
    mel, starts = track
    shared = fast.get_backbone(variant, "fast", threads=1).frontend
    live, fresh = (TimbralFrontEnd((shared.scale, shared.shift), shared.run) for _ in range(2))
    s0, s1 = starts[0], starts[1]
    live(mel[s0:s0 + 187][None], [("a", s0)])
    changed = mel[s1:s1 + 187].copy()
    changed[40] += 0.5  # a frame that differs from the one the stream had
    reused = live.frames_reused
    want = fresh(changed[None])
    assert_f32_close(live(changed[None], [("a", s1)]), want, f32_tol(want, TIMBRAL_TERMS), "changed window")
    assert live.frames_reused - reused == 187 - (s1 - s0) - 6 - 7  # frames 37..43 recomputed
    # A stream that jumps back (a restart) or a window of another stream shares nothing.
    before = live.frames_reused
    live(mel[s0:s0 + 187][None], [("a", s0)])
    live(mel[s1:s1 + 187][None], [("b", s1)])
    assert live.frames_reused == before


def test_backbone_outputs_do_not_depend_on_reuse(track):
    mel, starts = track
    backbone = fast.get_backbone("MTT_musicnn", "fast", threads=1)
    windows = np.stack([mel[s:s + 187] for s in starts])
    together = backbone(windows)
    one_by_one = [backbone(windows[i:i + 1], [("test-stream", s)]) for i, s in enumerate(starts)]
    assert_outputs_close({k: np.concatenate([o[k] for o in one_by_one]) for k in together}, together,
                         what="frames reused")
    with pytest.raises(fast.BackendError, match="stream keys"):
        backbone(windows[:2], [("x", 0)])


def test_stream_levels_normalise_each_frame_once(track):
    mel, starts = track
    levels = StreamLevels()
    s0, s1, s2 = starts[:3]
    w0, w1 = mel[s0:s0 + 187], mel[s1:s1 + 187]
    # Offline windows (no stream) get their own exact gain.
    np.testing.assert_array_equal(levels(np.stack([w0, w1])), normalize_level(np.stack([w0, w1])))
    n0 = levels(w0[None], [("a", s0)])[0]
    n1 = levels(w1[None], [("a", s1)])[0]
    d = s1 - s0
    assert np.array_equal(n1[:187 - d], n0[d:])  # shared frames keep their values, bit for bit
    g0 = level_gain_db(w0[None])[0]
    # Gains are applied in float64 and rounded to float32 once: one rounding (n = 1) apart.
    if abs(level_gain_db(w1[None])[0] - g0) <= LEVEL_HOLD_DB:  # held: new frames at the same gain
        want = apply_gain(w1[None], [g0])[0][187 - d:]
        assert_f32_close(n1[187 - d:], want, f32_tol(want, 1), "held gain")
    # 12 dB louder new frames move the gain, for the new frames only.
    loud = w1.copy()
    loud[187 - d:] = np.log10(16.0 * (np.power(10.0, loud[187 - d:]) - 1.0) + 1.0)
    gain = level_gain_db(loud[None])[0]
    assert abs(gain - g0) > LEVEL_HOLD_DB
    n1b = levels(loud[None], [("b", s0)])  # another stream: its own state
    want = apply_gain(loud[None], [gain])[0]
    assert_f32_close(n1b[0], want, f32_tol(want, 1), "another stream")
    levels(w0[None], [("c", s0)])
    n_loud = levels(loud[None], [("c", s1)])[0]
    assert np.array_equal(n_loud[:187 - d], n0[d:])
    assert_f32_close(n_loud[187 - d:], want[187 - d:], f32_tol(want[187 - d:], 1), "moved gain")


# --- the pipeline -------------------------------------------------------------------------------

def test_consecutive_live_windows_share_their_frames_bit_for_bit(tmp_path):
    import soundfile as sf

    from server.audio.file_source import FileSource
    from server.stream.pipeline import Pipeline

    path = tmp_path / "song.wav"
    sf.write(path, make_music(sr=44100, seconds=9.0, seed=5), 44100)
    source = FileSource([str(path)], loop=False, realtime=False)
    pipeline = Pipeline("src", source, hop_s=1.0)
    pipeline.start()
    windows = []
    try:
        while len(windows) < 6:
            # Read the state first: windows the source wrote before it ended are still drained.
            ended = source.state in ("ended", "error")
            w = pipeline.next_window()
            if w is not None:
                windows.append(w)
            elif ended:
                break
    finally:
        pipeline.stop()
    assert len(windows) == 6
    keys = {w.stream[0] for w in windows}
    assert len(keys) == 1
    for a, b in zip(windows, windows[1:]):
        d = b.stream[1] - a.stream[1]
        assert d in (62, 63)
        assert round(b.t - a.t, 6) == 1.0  # windows still end on the hop grid
        # All but the newest few (provisional) frames of a window reappear unchanged.
        shared = 187 - d - 4
        assert np.array_equal(b.mel[:shared], a.mel[d:d + shared])
