"""``run.py library`` as a user runs it: report, summary, reuse of stored results (also after a move or
a kill -9), playlists, tags with dry run, apply and undo."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.library.tags import audio_digest

pytestmark = pytest.mark.slow  # end to end: whole runs of run.py

ROOT = Path(__file__).resolve().parent.parent
DEMO = sorted((ROOT / "media" / "demo").glob("*.ogg"))


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "run.py", "library", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "music"
    (root / "sub").mkdir(parents=True)
    for src in DEMO[:3]:
        shutil.copy(src, root / "sub" / src.name)
    (root / "notes.txt").write_text("not music")
    (root / "broken.mp3").write_bytes(b"ID3" + os.urandom(2000))
    return root


def test_report_summary_reuse_after_move_and_change(tmp_path, library):
    data, report = tmp_path / "data", tmp_path / "report.json"
    first = run_cli(str(library), "--data-dir", str(data), "--report", str(report), "--jobs", "2",
                    "--playlists", str(tmp_path / "lists"))
    assert first.returncode == 0, first.stderr
    rows = json.loads(report.read_text())
    assert len(rows) == 3
    for row in rows:
        assert set(row) >= {"path", "genre", "confidence", "runner_up", "uncertain", "content", "tempo", "duration"}
        assert row["content"] == "music" and row["genre"] and 0 < row["confidence"] <= 1
        assert row["duration"] == pytest.approx(40.0, abs=1.0)
    assert "3 tracks (3 analysed now, 0 from earlier runs)" in first.stdout
    assert "skipped 2" in first.stdout and "broken.mp3: not decodable" in first.stdout
    assert "notes.txt: not an audio file" in first.stdout
    lists = sorted((tmp_path / "lists").glob("*.m3u"))
    assert {p.stem for p in lists} == {r["genre"] for r in rows}
    assert sum(p.read_text().count("\n/") for p in lists) == 3

    moved = library / "moved.ogg"
    shutil.move(library / "sub" / DEMO[0].name, moved)
    changed = library / "sub" / DEMO[1].name
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(DEMO[1]), "-t", "20", "-c:a", "libvorbis", str(changed)],
                   check=True)
    second = run_cli(str(library), "--data-dir", str(data), "--report", str(tmp_path / "r2.csv"))
    assert second.returncode == 0, second.stderr
    assert "3 tracks (1 analysed now, 2 from earlier runs)" in second.stdout
    assert "broken.mp3: not decodable" in second.stdout  # remembered, listed again, not decoded again
    csv_text = (tmp_path / "r2.csv").read_text()
    assert csv_text.startswith("path,genre,confidence,runner_up") and str(moved) in csv_text


def test_tags_dry_run_apply_and_undo(tmp_path, library):
    data = tmp_path / "data"
    files = sorted((library / "sub").glob("*.ogg"))
    before = {f: (f.read_bytes(), audio_digest(str(f))) for f in files}
    dry = run_cli(str(library), "--data-dir", str(data), "--write-tags")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would write ") == 3 and "genre (none) → " in dry.stdout
    assert all(f.read_bytes() == before[f][0] for f in files)
    log = tmp_path / "undo.jsonl"
    applied = run_cli(str(library), "--data-dir", str(data), "--write-tags", "--apply", "--undo-log", str(log))
    assert applied.returncode == 0, applied.stderr
    assert "3 tracks (0 analysed now, 3 from earlier runs)" in applied.stdout
    assert all(f.read_bytes() != before[f][0] and audio_digest(str(f)) == before[f][1] for f in files)
    again = run_cli(str(library), "--data-dir", str(data))  # rewritten tags: the same audio, not analysed again
    assert "3 tracks (0 analysed now, 3 from earlier runs)" in again.stdout
    undone = run_cli("--undo", str(log), "--data-dir", str(data))
    assert undone.returncode == 0 and "restored the tags of 3 file(s)" in undone.stdout
    assert all(audio_digest(str(f)) == before[f][1] for f in files)
    import mutagen

    for f in files:
        assert "genre" not in (mutagen.File(f, easy=True).tags or {})


def _children(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_kill_9_loses_at_most_the_tracks_in_flight(tmp_path):
    root = tmp_path / "music"
    root.mkdir()
    for i in range(8):
        shutil.copy(DEMO[i % len(DEMO)], root / f"{i}.ogg")
        with open(root / f"{i}.ogg", "ab") as f:  # different bytes: eight tracks, not one
            f.write(bytes([i]) * 16)
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "run.py", "library", str(root), "--data-dir", str(data), "--full",
                             "--jobs", "2", "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = data / "library.sqlite"
    deadline = time.monotonic() + 300
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if db.exists():
            with sqlite3.connect(db) as c:
                stored = c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        if stored >= 2:
            break
    assert proc.poll() is None and stored >= 2, "the run ended before it could be killed"
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as c:
        kept = c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert kept >= stored
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.5)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()], "workers outlived their parent"
    rerun = run_cli(str(root), "--data-dir", str(data), "--full", "--no-progress")
    assert rerun.returncode == 0, rerun.stderr
    assert f"8 tracks ({8 - kept} analysed now, {kept} from earlier runs)" in rerun.stdout
