"""Bad input at the non-web entry points: decode, classify (library and CLI), file
sources, stream URLs and device choices. Each gets a clear message; nothing crashes;
a running source is unaffected. Files are made here with soundfile and ffmpeg."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from server.audio.decode import DecodeError, decode
from server.engine import Engine, EngineError
from tests.support.audio import make_music

ROOT = Path(__file__).resolve().parent.parent


# --- the table of files -------------------------------------------------------------------------
def _wav(path, y, sr, subtype="FLOAT"):
    sf.write(path, y, sr, subtype=subtype)


def _music(sr=22050, seconds=4.0, channels=1):
    return make_music(sr=sr, seconds=seconds, channels=channels)


def make_corrupt(p):  # random bytes behind a .wav name
    p.write_bytes(np.random.default_rng(1).bytes(30000))


def make_truncated_header(p):  # a WAV cut inside its header
    _wav(p, _music(), 22050, "PCM_16")
    p.write_bytes(p.read_bytes()[:30])


def make_truncated_flac(p):  # a FLAC missing its second half: what is there still plays
    sf.write(p, _music(seconds=30.0), 22050, format="FLAC")
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def make_empty(p):
    p.write_bytes(b"")


def make_text_as_mp3(p):
    p.write_text("<html><body>this is a web page, not a song</body></html>\n" * 40)


def make_png_as_mp3(p):
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(2).bytes(5000))


def make_nan_inf(p):
    y = _music()
    y[1000:3000] = np.nan
    y[5000:5100] = np.inf
    y[8000:8100] = -np.inf
    _wav(p, y, 22050)


def make_huge_floats(p):  # finite but absurd float samples
    y = _music()
    y[2000:2500] = 3e38
    _wav(p, y, 22050)


def make_silence(p):
    _wav(p, np.zeros(22050 * 4, np.float32), 22050, "PCM_16")


def make_dc(p):
    _wav(p, np.full(22050 * 4, 0.5, np.float32), 22050, "PCM_16")


def make_clipped(p):
    _wav(p, np.clip(_music() * 20, -1.0, 1.0), 22050, "PCM_16")


def make_full_scale_square(p):
    t = np.arange(22050 * 4) / 22050
    _wav(p, np.sign(np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050, "PCM_16")


def make_short(seconds):
    def make(p):
        _wav(p, _music(seconds=seconds), 22050, "PCM_16")
    return make


def make_channels(n):
    def make(p):
        _wav(p, _music(seconds=3.5, channels=n) if n > 1 else _music(seconds=3.5), 22050, "PCM_16")
    return make


def make_rate(sr):
    def make(p):
        _wav(p, _music(sr=sr, seconds=3.5), sr, "PCM_16")
    return make


def make_mp3_via_ffmpeg(p):
    wav = p.with_suffix(".src.wav")
    _wav(wav, _music(sr=44100, seconds=4.0), 44100, "PCM_16")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), str(p)], check=True,
                   timeout=60)
    wav.unlink()


# (name, file name, maker, expected): expected is ("error", regex) | ("ok", padded?)
CASES = [
    ("corrupt", "corrupt.wav", make_corrupt, ("error", r"not a decodable audio file")),
    ("truncated-header", "cut.wav", make_truncated_header, ("error", r"not a decodable|no audio samples")),
    ("truncated-flac", "half.flac", make_truncated_flac, ("ok", False)),
    ("zero-length", "empty.mp3", make_empty, ("error", r"empty \(0 bytes\)")),
    ("text-as-mp3", "page.mp3", make_text_as_mp3, ("error", r"not a decodable audio file")),
    ("png-as-mp3", "image.mp3", make_png_as_mp3, ("error", r"not a decodable audio file")),
    ("nan-inf", "naninf.wav", make_nan_inf, ("ok", False)),
    ("huge-floats", "huge.wav", make_huge_floats, ("ok", False)),
    ("silence", "silence.wav", make_silence, ("ok", False)),
    ("dc-offset", "dc.wav", make_dc, ("ok", False)),
    ("clipped", "clipped.wav", make_clipped, ("ok", False)),
    ("full-scale-square", "square.wav", make_full_scale_square, ("ok", False)),
    ("short-0.2s", "short02.wav", make_short(0.2), ("ok", True)),
    ("short-2.9s", "short29.wav", make_short(2.9), ("ok", True)),
    ("one-sample", "one.wav", make_short(1 / 22050), ("ok", True)),
    ("mp3", "real.mp3", make_mp3_via_ffmpeg, ("ok", False)),
    *[(f"{n}ch", f"ch{n}.wav", make_channels(n), ("ok", False)) for n in range(1, 9)],
    *[(f"{sr}Hz", f"sr{sr}.wav", make_rate(sr), ("ok", False))
      for sr in (8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000)],
]
IDS = [c[0] for c in CASES]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_input")
    out = {}
    for name, fname, maker, expected in CASES:
        p = d / fname
        maker(p)
        out[name] = (p, expected)
    return out


@pytest.fixture(scope="module")
def model():
    from server.model.registry import load_model

    m = load_model(None)
    m.predict(np.zeros((1, 187, 96), np.float32))
    return m


@pytest.mark.parametrize("case", IDS)
def test_decode(files, case):
    path, (kind, arg) = files[case]
    if kind == "error":
        with pytest.raises(DecodeError, match=arg) as err:
            decode(path)
        assert path.name in str(err.value)  # the message names the file
        return
    y, sr = decode(path)
    assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0 and sr > 0
    assert np.isfinite(y).all() and np.abs(y).max() <= 16.0


@pytest.mark.parametrize("case", IDS)
def test_classify_file(files, model, case):
    from server.classify import classify_file

    path, (kind, arg) = files[case]
    if kind == "error":
        with pytest.raises(DecodeError, match=arg):
            classify_file(str(path), model)
        return
    r = classify_file(str(path), model)
    probs = np.array(list(r["probabilities"].values()))
    assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-3, r["probabilities"]
    assert r["padded"] is arg
    for w in r["timeline"]:
        assert np.isfinite(w["probabilities"]).all() and abs(sum(w["probabilities"]) - 1) < 1e-3


def test_cli_classify_over_the_whole_table(files):
    """One run over every file: an error line per bad file, a result per good one, exit code 1."""
    paths = [str(files[c][0]) for c in IDS]
    out = subprocess.run([sys.executable, "run.py", "classify", "--json", *paths], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stderr[-2000:]
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert "Traceback" not in out.stderr
    bad = [c for c in IDS if files[c][1][0] == "error"]
    assert len(errors) == len(bad), errors
    for c, line in zip(bad, errors):
        assert str(files[c][0]) in line and re.search(files[c][1][1], line), line
    results = {Path(r["file"]).name: r for r in map(json.loads, out.stdout.splitlines())}
    good = [c for c in IDS if files[c][1][0] == "ok"]
    assert sorted(results) == sorted(files[c][0].name for c in good)
    for c in good:
        r = results[files[c][0].name]
        assert r["padded"] is files[c][1][1]
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-3
    short = subprocess.run([sys.executable, "run.py", "classify", str(files["short-0.2s"][0])], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert short.returncode == 0 and "padded" in short.stdout


@pytest.mark.parametrize("args,message", [
    (["classify", "/nonexistent/song.flac"], r"file not found"),
    (["classify", "--model", "no-such-model", "x.wav"], r"cannot load model no-such-model"),
])
def test_cli_errors_are_one_line(args, message):
    out = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and re.search(message, lines[0]), out.stderr[-2000:]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("case", [c for c in IDS if c in
                                  ("corrupt", "truncated-header", "zero-length", "text-as-mp3", "png-as-mp3")])
def test_file_source_refuses_bad_files(files, case):
    path, (_, message) = files[case]
    with pytest.raises(EngineError, match=message):
        Engine().start_source({"kind": "file", "path": str(path)})


BAD_SPECS = [
    ({"kind": "stream", "url": "ftp://radio.example/live"}, r"unsupported URL scheme"),
    ({"kind": "stream", "url": "http://"}, r"no host name"),
    ({"kind": "stream", "url": "radio.example/live"}, r"not a URL"),
    ({"kind": "stream", "url": "http://radio example/live"}, r"spaces"),
    ({"kind": "stream", "url": "file:///etc/passwd"}, r"file: URLs are not allowed"),
    ({"kind": "stream", "url": "http://radio.example:99999/x"}, r"invalid port"),
    ({"kind": "stream", "url": "javascript:alert(1)"}, r"not a URL|unsupported URL scheme"),
    ({"kind": "stream", "url": ""}, r"needs a 'url'"),
    ({"kind": "stream", "url": 42}, r"needs a 'url'"),
    ({"kind": "mic", "device": "no such microphone"}, r"no audio input device matches.*run\.py devices"),
    ({"kind": "mic", "device": 4242}, r"no audio input device with index 4242"),
    ({"kind": "mic", "device": -1}, r"no audio input device with index -1"),
    ({"kind": "mic", "device": [1, 2]}, r"'device' must be"),
    ({"kind": "mic", "samplerate": 5}, r"'samplerate' must be"),
    ({"kind": "file", "path": "/no/such/file.flac"}, r"no such file"),
    ({"kind": "file"}, r"needs a 'path'"),
]


def test_bad_choices_leave_a_running_source_alone(files, model):
    """Every bad stream URL and device choice is refused with its message while a good
    file source keeps producing predictions from the same engine."""
    engine = Engine(hop=0.5)
    engine.use_model(model)
    preds, notices = [], []

    class Sink:
        def on_prediction(self, p):
            preds.append(p)

        def on_notice(self, p):
            notices.append(p)

    engine.add_sink(Sink())
    good = engine.start_source({"kind": "file", "path": str(files["mp3"][0]), "loop": True})
    engine.worker.start()
    try:
        for spec, message in BAD_SPECS:
            with pytest.raises(EngineError, match=message):
                engine.start_source(spec)
        n = len(preds)
        deadline = time.monotonic() + 30
        while len(preds) < n + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(preds) >= n + 3
        assert engine.source_ids() == [good]
        assert engine.status()["sources"][0]["state"] == "running"
        assert engine.worker.is_alive()
    finally:
        engine.shutdown()
    assert all(p.source == good for p in preds)
