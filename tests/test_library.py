"""The library's parts on real files: scanning, content keys, the results store, excerpts read by
seeking, and the fast analysis against the whole-track one."""

import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from server.audio.decode import DecodeError, decode
from server.audio.seek import read_excerpts
from server.library.analysis import analyse_fast, analyse_full, excerpt_starts
from server.library.fingerprint import content_key
from server.library.scan import scan
from server.library.store import LibraryStore
from tests.support.audio import make_music


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "music"
    (root / "a" / "b").mkdir(parents=True)
    sf.write(root / "a" / "one.wav", make_music(sr=22050, seconds=6.0), 22050)
    sf.write(root / "a" / "b" / "two.flac", make_music(sr=44100, seconds=5.0, seed=1), 44100)
    (root / "empty.mp3").write_bytes(b"")
    (root / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (root / "a" / "b" / "loop").symlink_to(root)
    (root / "dangling.mp3").symlink_to(root / "gone.mp3")
    return root


def test_scan_finds_audio_once_and_lists_everything_else_with_a_reason(library):
    found = scan([str(library), str(library / "a")])  # the second folder is inside the first
    assert [os.path.relpath(p, library) for p in found.files] == ["a/b/two.flac", "a/one.wav"]
    reasons = {os.path.relpath(p, library): why for p, why in found.skipped}
    assert reasons["empty.mp3"] == "empty (0 bytes)"
    assert reasons["cover.jpg"] == "not an audio file"
    assert reasons["dangling.mp3"].startswith("cannot read")
    assert any("symlink loop" in why for why in reasons.values())
    assert scan([str(library / "nope")]).skipped == [(str(library / "nope"), "not found")]


def test_content_key_follows_the_content_not_the_path(tmp_path, library):
    one = library / "a" / "one.wav"
    key = content_key(str(one))
    moved = tmp_path / "moved.wav"
    shutil.move(one, moved)
    assert content_key(str(moved)) == key
    data = bytearray(moved.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte in the middle of the audio
    moved.write_bytes(bytes(data))
    assert content_key(str(moved)) != key


def test_store_reuses_results_by_key_and_full_answers_fast(tmp_path, library):
    store = LibraryStore(tmp_path / "lib.sqlite")
    path = str(library / "a" / "one.wav")
    key = store.key_of(path)
    assert store.result(key, "default") is None
    store.put(key, "default", {"path": path, "genre": "jazz", "mode": "fast", "duration": 6.0})
    assert store.result(key, "default")["genre"] == "jazz"
    assert store.result(key, "default", full=True) is None
    assert store.result(key, "other-model") is None
    store.put(key, "default", {"genre": "blues", "mode": "full", "duration": 6.0})
    assert store.result(key, "default")["genre"] == "blues"
    store.close()
    again = LibraryStore(tmp_path / "lib.sqlite")  # on disk, not in memory
    assert [r["genre"] for r in again.known("default")] == ["blues"]
    assert again.known("default", under=[str(tmp_path / "elsewhere")]) == []


def test_excerpts_read_by_seeking_equal_the_decoded_samples(tmp_path):
    y = make_music(sr=44100, seconds=20.0, seed=3)
    for ext in ("wav", "flac"):
        path = tmp_path / f"x.{ext}"
        sf.write(path, y, 44100)
        full, sr = decode(str(path))
        excerpts, sr2 = read_excerpts(str(path), [2.0, 11.5], 3.0)
        assert sr2 == sr == 44100
        for start, e in zip([2.0, 11.5], excerpts):
            a = int(start * sr)
            np.testing.assert_allclose(e, full[a:a + e.shape[0]], atol=1e-6)
            assert e.shape[0] == 3 * sr
    # ffmpeg's -ss for containers soundfile does not read: the same audio, a few ms either way
    m4a = tmp_path / "x.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "x.wav"), "-c:a", "aac", "-b:a", "192k", str(m4a)],
                   check=True)
    [e], sr = read_excerpts(str(m4a), [10.0], 2.0)
    assert sr == 44100 and abs(e.shape[0] - 2 * sr) < 2048
    ref = full[int(10.0 * sr) - 4096:int(12.0 * sr) + 4096]
    corr = max(np.corrcoef(e[:sr], ref[lag:lag + sr])[0, 1] for lag in range(0, 8192, 16))
    assert corr > 0.9


def test_excerpts_of_a_file_that_is_not_audio_raise_decode_error(tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(DecodeError):
        read_excerpts(str(bad), [0.0], 3.0)


def test_excerpt_starts_spread_over_the_track_and_stay_inside():
    starts = excerpt_starts(240.0, 8, 8.0)
    assert len(starts) == 8 and starts[0] > 0 and starts[-1] + 8.0 <= 240.0
    assert np.all(np.diff(starts) > 20)
    assert excerpt_starts(5.0, 4, 8.0) == [0.0] * 4  # shorter than an excerpt: read it from the start


def test_full_analysis_equals_classify_and_fast_agrees_on_real_music(model):
    from server.classify import classify_file

    demo = os.path.join(os.path.dirname(__file__), "..", "media", "demo", "03-city-blues.ogg")
    full = analyse_full(demo, model)
    whole = classify_file(demo, model)
    assert full["genre"] == whole["genre"] and full["content"] == whole["content"]
    assert full["confidence"] == pytest.approx(whole["confidence"], abs=0.01)
    assert full["duration"] == pytest.approx(whole["duration"], abs=0.01)
    fast = analyse_fast(demo, model)
    assert fast["mode"] == "fast" and fast["windows"] == 8
    assert fast["genre"] == full["genre"]
    assert fast["runner_up"] != fast["genre"] and fast["runner_up_confidence"] <= fast["confidence"]
    assert fast["tempo"] is None or 40 < fast["tempo"] < 250


def test_a_file_that_failed_is_listed_again_but_not_retried_until_it_changes(tmp_path, model):
    from server.library.runner import run_library

    (tmp_path / "music").mkdir()
    sf.write(tmp_path / "music" / "ok.wav", make_music(sr=16000, seconds=4.0), 16000)
    bad = tmp_path / "music" / "bad.flac"
    bad.write_bytes(b"fLaC" + os.urandom(3000))
    store = LibraryStore(tmp_path / "lib.sqlite")
    first = run_library([str(tmp_path / "music")], store, model, jobs=1)
    assert (first.analysed, first.failed) == (1, 1) and first.skipped[0][1].startswith("not decodable")
    second = run_library([str(tmp_path / "music")], store, model, jobs=1)
    assert (second.analysed, second.failed, second.reused) == (0, 0, 1)
    assert second.skipped == first.skipped
    sf.write(bad, make_music(sr=16000, seconds=4.0, seed=5), 16000, format="FLAC")  # repaired
    third = run_library([str(tmp_path / "music")], store, model, jobs=1)
    assert (third.analysed, third.failed, third.reused) == (1, 0, 1) and third.skipped == []
    assert [r["path"] for r in store.known(model.name)] == sorted(str(p) for p in (tmp_path / "music").iterdir())
