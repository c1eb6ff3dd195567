"""Loopback capture: what this computer plays, through a PulseAudio monitor source.

paplay → null sink gm_test → its monitor 'gm_test.monitor' → ALSA 'pulse' with
PULSE_SOURCE → PortAudio → MicSource. The daemon's default source is switched to
another sink's monitor first, so only the loopback selection can route the audio.
"""

import glob
import os
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from server.audio import devices
from server.audio.decode import decode
from server.audio.mic_source import DeviceError, MicSource
from tests.support.audio import best_lag_correlation, make_music
from tests.support.pulse import SINK, requires_pulseaudio

pytestmark = [pytest.mark.slow, requires_pulseaudio]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP_SECONDS = 4.0
OTHER = "gm_other"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    demo = sorted(glob.glob(os.path.join(ROOT, "media", "demo", "*.ogg")))
    if demo:
        y, sr = decode(demo[1 if len(demo) > 1 else 0])
        start = min(int(10 * sr), max(0, y.size - int(CLIP_SECONDS * sr)))
        y = y[start:start + int(CLIP_SECONDS * sr)]
    else:
        sr = 44100
        y = make_music(sr, CLIP_SECONDS, seed=11)
    path = tmp_path_factory.mktemp("loopback") / "clip.wav"
    sf.write(path, y, sr, subtype="FLOAT")
    return path, y, sr


@pytest.fixture(scope="module")
def two_sinks(pulse):
    """A second null sink whose monitor becomes the default source (a decoy)."""
    pulse.pactl("load-module", "module-null-sink", f"sink_name={OTHER}", "rate=44100",
                "sink_properties=device.description=Decoy")
    pulse.pactl("set-default-source", f"{OTHER}.monitor")
    return pulse


def test_monitor_sources_are_listed_as_loopback(two_sinks):
    entries = devices.list_loopback_sources()
    names = [e["name"] for e in entries]
    assert f"{SINK}.monitor" in names and f"{OTHER}.monitor" in names
    e = next(e for e in entries if e["name"] == f"{OTHER}.monitor")
    assert e["loopback"] is True and e["index"] is None and e["hostapi"] == "PulseAudio"
    assert e["label"] == "What this computer is playing (Decoy)"
    assert e["pulse_source"] == f"{OTHER}.monitor" and e["device"] == f"loopback:{OTHER}.monitor"
    assert e["default_samplerate"] == 44100.0 and e["max_input_channels"] >= 1
    listed = devices.list_input_devices()
    pa = [d for d in listed if not d["loopback"]]
    assert any(d["name"] == "pulse" for d in pa)
    # PortAudio devices first, then the loopback entries
    assert listed[:len(pa)] == pa and [d["name"] for d in listed[len(pa):]] == names


def test_no_server_means_no_loopback_entries(monkeypatch, tmp_path):
    monkeypatch.delenv("PULSE_SERVER", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # no socket there
    assert devices.list_loopback_sources() == []


class Capture:
    def __init__(self):
        self.blocks, self.first = [], threading.Event()

    def __call__(self, block):
        self.blocks.append(block)
        self.first.set()

    def samples(self, start=0):
        return np.concatenate(self.blocks)[start:]


@pytest.mark.parametrize("spec", ["string", "entry"])
def test_loopback_capture_is_what_is_played(two_sinks, clip, spec):
    path, y, sr = clip
    entry = next(e for e in devices.list_input_devices() if e.get("pulse_source") == f"{SINK}.monitor")
    device = entry["device"] if spec == "string" else entry
    cap = Capture()
    mic = MicSource(device=device)
    assert mic.label.startswith("What this computer is playing")
    saved = os.environ.get("PULSE_SOURCE")
    mic.start(cap)
    try:
        assert os.environ.get("PULSE_SOURCE") == saved, "PULSE_SOURCE must be restored after the open"
        assert cap.first.wait(10), "no audio blocks from the loopback source within 10 s"
        outputs = two_sinks.pactl("list", "short", "source-outputs")
        sources = {ln.split("\t")[0]: ln.split("\t")[1] for ln in two_sinks.pactl("list", "short", "sources").splitlines()}
        assert any(sources.get(ln.split("\t")[1]) == f"{SINK}.monitor" for ln in outputs.splitlines()), outputs
        n0 = sum(b.size for b in cap.blocks)
        player = two_sinks.play(path)
        player.wait(timeout=CLIP_SECONDS + 15)
        assert player.returncode == 0, player.stderr.read().decode()
        time.sleep(0.5)
    finally:
        mic.stop()
    assert mic.state == "stopped" and mic.error is None
    assert mic.device_name == f"pulse: {SINK}.monitor"
    x = cap.samples(n0)
    assert mic.samplerate == sr
    corr, _ = best_lag_correlation(x, y, max_lag=int(3 * sr))
    assert corr > 0.9, f"captured audio does not match the played clip (corr {corr:.3f})"


def test_decoy_default_source_hears_nothing_of_it(two_sinks, clip):
    """Control: the plain 'pulse' device (default source = decoy monitor) stays silent."""
    path, y, sr = clip
    cap = Capture()
    mic = MicSource(device="pulse")
    mic.start(cap)
    try:
        assert cap.first.wait(10)
        n0 = sum(b.size for b in cap.blocks)
        player = two_sinks.play(path)
        player.wait(timeout=CLIP_SECONDS + 15)
        time.sleep(0.3)
    finally:
        mic.stop()
    assert np.abs(cap.samples(n0)).max() < 1e-3


def test_unknown_loopback_source_is_a_clear_error(two_sinks):
    mic = MicSource(device="loopback:no_such_sink.monitor")
    with pytest.raises(DeviceError, match="no source named 'no_such_sink.monitor'"):
        mic.start(lambda b: None)
    assert mic.state == "error" and "no_such_sink.monitor" in mic.error
