"""The command line, run as a user runs it (subprocesses of run.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.support.audio import make_music
from tests.support.pulse import requires_pulseaudio

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

ROOT = Path(__file__).resolve().parent.parent
DEMO = sorted((ROOT / "media" / "demo").glob("*.ogg"))


def run_cli(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_classify_json_for_good_files_and_one_error_line_for_a_bad_one(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, make_music(sr=22050, seconds=1.5), 22050)
    bad = tmp_path / "notes.mp3"
    bad.write_text("these are not the droids you are looking for\n" * 20)
    out = run_cli("classify", str(DEMO[0]), str(bad), str(short), "--json")
    assert out.returncode != 0  # one file failed
    err_lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1 and "notes.mp3" in err_lines[0]
    results = [json.loads(ln) for ln in out.stdout.splitlines()]
    assert [Path(r["file"]).name for r in results] == [DEMO[0].name, "short.wav"]
    long, padded = results
    for r in results:
        assert set(r) >= {"file", "genre", "confidence", "probabilities", "timeline"}
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-3
        assert r["genre"] == max(r["probabilities"], key=r["probabilities"].get)
    # A 40-s clip at hop 1 s: windows ending at 3.008 s, 4.008 s, ... up to 40 s.
    assert 36 <= len(long["timeline"]) <= 38
    assert long["timeline"][1]["t"] - long["timeline"][0]["t"] == pytest.approx(1.0, abs=0.02)
    assert padded["padded"] is True and len(padded["timeline"]) == 1


def test_classify_plain_output(tmp_path):
    out = run_cli("classify", str(DEMO[1]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(str(DEMO[1]) + ": ")


def test_bad_source_spec_is_a_clear_error():
    out = run_cli("serve", "--source", "radio:xyz", timeout=60)
    assert out.returncode == 2
    assert "unknown source" in out.stderr


def test_bad_hop_is_refused_by_the_parser():
    out = run_cli("serve", "--hop", "7", timeout=60)
    assert out.returncode == 2
    assert "hop must be" in out.stderr


@requires_pulseaudio
def test_devices_lists_the_pulse_device(pulse):
    out = run_cli("devices", "--json", env=pulse.env, timeout=60)
    assert out.returncode == 0, out.stderr
    devices = json.loads(out.stdout)
    names = [d["name"] for d in devices]
    assert any("pulse" in n.lower() for n in names), names
    assert all(d["max_input_channels"] > 0 and d["default_samplerate"] > 0 for d in devices)
    # The plain listing too, including the loopback ("what this computer is playing") entries.
    out = run_cli("devices", env=pulse.env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pulse" in out.stdout.lower()
    assert any(d.get("loopback") for d in devices) == ("What this computer is playing" in out.stdout)


def test_bad_token_or_media_folder_stops_serve_before_it_listens(tmp_path):
    out = run_cli("serve", "--token", "short", "--data-dir", str(tmp_path), timeout=60)
    assert out.returncode == 2 and "at least 16 characters" in out.stderr
    out = run_cli("serve", "--media-dir", str(tmp_path / "missing"), "--data-dir", str(tmp_path), timeout=60)
    assert out.returncode == 2 and "not a directory" in out.stderr


def test_sigterm_shuts_down_like_ctrl_c(tmp_path):
    """SIGTERM (systemd, docker stop): sources stopped, history closed (its WAL folded back in), exit 0."""
    import signal

    from tests.support.web import live_server, music_file

    data = tmp_path / "data"
    with live_server(f"file:{music_file(tmp_path)}", extra_args=["--data-dir", str(data)]) as srv:
        assert (data / "history.sqlite-wal").exists()  # open: the writer holds the WAL
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(30) == 0, srv.log()
    assert (data / "history.sqlite").exists() and not (data / "history.sqlite-wal").exists(), srv.log()
    assert "Traceback" not in srv.log()
