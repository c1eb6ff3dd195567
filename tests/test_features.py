import librosa
import numpy as np

from server.stream import features
from server.config import MODEL_SR, N_MELS, WINDOW_FRAMES, WINDOW_SAMPLES
from tests.support.tolerance import LOG_MEL_TERMS, assert_f32_close, f32_tol


def _music_like(seconds: float, sr: int = MODEL_SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    beat = (np.sin(2 * np.pi * 2 * t) > 0.95) * np.random.default_rng(0).standard_normal(t.size) * 0.3
    return (0.4 * chord + beat).astype(np.float32)


def test_log_mel_matches_librosa_reference():
    y = _music_like(5.0)
    ref = librosa.feature.melspectrogram(y=y, sr=MODEL_SR, n_fft=512, hop_length=256, n_mels=96, center=False).T
    ref = np.log10(10000 * ref + 1)
    ours = features.log_mel(y)
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    assert_f32_close(ours, ref, f32_tol(ref, LOG_MEL_TERMS), "log-mel vs librosa")


def test_window_is_exactly_one_patch_of_the_whole_track():
    """A live window's features equal the original's interior patch of the whole-track spectrogram."""
    y = _music_like(8.0)
    whole = features.log_mel(y)
    start_frame = 50
    window = y[start_frame * 256: start_frame * 256 + WINDOW_SAMPLES]
    want = whole[start_frame:start_frame + WINDOW_FRAMES]
    assert_f32_close(features.window_mel(window), want, f32_tol(want, LOG_MEL_TERMS), "window vs whole track")
    assert features.window_mel(window).shape == (WINDOW_FRAMES, N_MELS)


def test_short_input_is_padded_and_windows_cut():
    assert features.window_mel(np.zeros(1000, np.float32)).shape == (WINDOW_FRAMES, N_MELS)
    y = _music_like(10.0)
    w = features.window_mels(y, hop_s=1.0)
    starts = features.window_starts(y.shape[0], 16000)
    assert w.shape == (len(starts), WINDOW_FRAMES, N_MELS) and len(starts) == 7
    # Each window is the live path's window of its own samples.
    assert np.array_equal(w[3], features.window_mel(y[starts[3]:starts[3] + WINDOW_SAMPLES]))
    assert features.window_mels(np.zeros(1000, np.float32)).shape == (1, WINDOW_FRAMES, N_MELS)


def test_no_overflow_at_full_scale():
    loud = np.clip(_music_like(3.5) * 10, -1, 1)
    assert np.isfinite(features.window_mel(loud)).all()
    assert np.isfinite(features.mel_to_db(features.mel_power(loud))).all()
