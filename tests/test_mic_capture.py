"""Real capture: paplay → PulseAudio null sink → monitor → ALSA 'pulse' → PortAudio → MicSource."""

import glob
import os
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import soxr

from server.audio import devices
from server.audio.decode import decode
from server.audio.mic_source import DeviceError, MicSource
from tests.support.audio import best_lag_correlation, log_spectrum, make_music
from tests.support.pulse import pulse_server, requires_pulseaudio
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, requires_pulseaudio]

CLIP_SECONDS = 4.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 4-s music clip as a wav: from the demo playlist when present, else synthesised."""
    demo = sorted(glob.glob(os.path.join(ROOT, "media", "demo", "*.ogg")))
    if demo:
        y, sr = decode(demo[0])
        start = min(int(10 * sr), max(0, y.size - int(CLIP_SECONDS * sr)))
        y = y[start:start + int(CLIP_SECONDS * sr)]
    else:
        sr = 44100
        y = make_music(sr, CLIP_SECONDS, seed=7)
    path = tmp_path_factory.mktemp("mic") / "clip.wav"
    sf.write(path, y, sr, subtype="FLOAT")
    return path, y, sr


class Capture:
    """Collects blocks delivered on PortAudio's thread."""

    def __init__(self):
        self.blocks = []
        self.first = threading.Event()

    def __call__(self, block):
        self.blocks.append(block)
        self.first.set()

    def samples(self):
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


def capture_while_playing(srv, path, **mic_kwargs):
    """Start a MicSource on 'pulse', play ``path`` into the sink, stop after it ends."""
    cap = Capture()
    mic = MicSource(device="pulse", **mic_kwargs)
    mic.start(cap)
    try:
        # The null sink can take ~2 s to deliver its first block; play only once
        # capture runs so the whole clip is recorded.
        assert cap.first.wait(10), "no audio blocks from the 'pulse' device within 10 s"
        n_before = sum(b.size for b in cap.blocks)
        player = srv.play(path)
        player.wait(timeout=CLIP_SECONDS + 15)
        assert player.returncode == 0, player.stderr.read().decode()
        time.sleep(0.5)
    finally:
        mic.stop()
    return mic, cap.samples()[n_before:]


@pytest.mark.parametrize("rate", [None, 22050])
def test_captured_audio_is_the_played_music(pulse, clip, rate):
    path, y, sr = clip
    mic, x = capture_while_playing(pulse, path, samplerate=rate)
    assert mic.state == "stopped" and mic.error is None
    assert mic.samplerate == (rate or 44100)
    assert mic.notice is None
    assert x.dtype == np.float32 and x.ndim == 1
    assert x.size >= 0.9 * CLIP_SECONDS * mic.samplerate, f"only {x.size} samples captured"
    rms = float(np.sqrt(np.mean(x ** 2)))
    assert rms > 0.3 * float(np.sqrt(np.mean(y ** 2))), f"capture is (nearly) silent: rms={rms}"

    ref = soxr.resample(y, sr, mic.samplerate).astype(np.float32) if sr != mic.samplerate else y
    corr, lag = best_lag_correlation(x, ref)
    # The null sink is lossless apart from 16-bit samples and PulseAudio's resampler,
    # so the recording matches the clip sample by sample once aligned.
    assert corr > 0.9, f"waveform correlation with the played clip is {corr:.3f}"
    # lag < 0: PulseAudio rewinds the sink when a stream joins, so the clip's first
    # few ms can land in blocks delivered before we started counting.
    assert -0.1 * mic.samplerate < lag < x.size - ref.size // 2, lag
    # Control: the clip reversed has the same spectrum but not the same waveform.
    assert best_lag_correlation(x, ref[::-1].copy())[0] < corr - 0.3
    a, b = max(0, lag), max(0, -lag)
    m = min(x.size - a, ref.size - b)
    spec_corr = np.corrcoef(log_spectrum(x[a:a + m], mic.samplerate),
                            log_spectrum(ref[b:b + m], mic.samplerate))[0, 1]
    assert spec_corr > 0.95, spec_corr


def test_rate_rejected_by_device_falls_back_to_default(pulse, clip):
    # PulseAudio's limit is 384 kHz, so PortAudio rejects 400 kHz for 'pulse'
    # with paInvalidSampleRate: a real rejection, not a mocked one.
    sd = devices.sounddevice()
    with pytest.raises(sd.PortAudioError, match="Invalid sample rate"):
        sd.check_input_settings(device=devices.resolve_input_device("pulse"), samplerate=400000)
    path, y, sr = clip
    mic, x = capture_while_playing(pulse, path, samplerate=400000)
    assert mic.samplerate == 44100
    assert "400000 Hz" in mic.notice and "44100" in mic.notice
    assert x.size >= 0.9 * CLIP_SECONDS * 44100
    assert np.abs(x).max() > 0.1


def test_stereo_capture_is_downmixed(pulse, clip):
    cap = Capture()
    mic = MicSource(device="pulse", channels=2)
    mic.start(cap)
    try:
        assert cap.first.wait(10)
    finally:
        mic.stop()
    assert mic.channels == 2
    assert all(b.ndim == 1 and b.dtype == np.float32 for b in cap.blocks)
    assert mic.describe()["state"] == "stopped"


def test_device_lookup(pulse):
    names = [d["name"] for d in devices.list_input_devices()]
    assert "pulse" in names
    idx = devices.resolve_input_device("pulse")
    assert devices.resolve_input_device(idx) == idx
    assert devices.resolve_input_device(str(idx)) == idx
    assert devices.resolve_input_device("PULS") == idx  # unique fragment, any case
    d = next(d for d in devices.list_input_devices() if d["index"] == idx)
    assert d["max_input_channels"] >= 1 and d["default_samplerate"] > 0


@pytest.mark.parametrize("spec", ["no such microphone", 4242])
def test_unknown_device_is_a_clear_error(pulse, spec):
    mic = MicSource(device=spec)
    with pytest.raises(DeviceError, match=r"python run\.py devices"):
        mic.start(lambda b: None)
    assert mic.state == "error" and "run.py devices" in mic.error


def test_lost_sound_server_sets_lost_state(pulse):
    # A second, private daemon that we kill mid-capture, like an unplugged device.
    with pulse_server() as srv:
        cap = Capture()
        mic = MicSource(device="pulse")
        mic.start(cap)
        try:
            assert cap.first.wait(10)
            srv.stop()
            wait_until(lambda: mic.state != "running", 10)
            assert mic.state == "lost"  # and it keeps trying to reopen the device
            assert "pulse" in (mic.notice or "")
        finally:
            mic.stop()
        assert mic.state == "stopped"


def test_file_source_audible_playback_reaches_the_sink(pulse, clip):
    # FileSource plays on the 'pulse' output (default sink gm_test) while MicSource
    # records the sink's monitor: the output path is checked end to end.
    from server.audio.file_source import FileSource

    path, y, sr = clip
    cap = Capture()
    mic = MicSource(device="pulse")
    mic.start(cap)
    try:
        assert cap.first.wait(10)
        n_before = sum(b.size for b in cap.blocks)
        src = FileSource([path], loop=False, realtime=True, output_device="pulse")
        src.start(lambda b: None)
        assert src.wait(timeout=CLIP_SECONDS + 10)
        assert src.state == "ended" and src.notice is None, src.notice
        time.sleep(1.0)  # let the output latency drain into the monitor
    finally:
        mic.stop()
    x = cap.samples()[n_before:]
    ref = soxr.resample(y, sr, mic.samplerate).astype(np.float32) if sr != mic.samplerate else y
    corr, _ = best_lag_correlation(x, ref)
    assert corr > 0.9, f"played-back audio correlates only {corr:.3f} with the file"
