"""Tags written into real MP3/FLAC/Ogg/M4A files made with ffmpeg: only genre and BPM change, the audio
stream stays byte for byte the same, files with a genre are left alone unless asked, and undo restores
the tags exactly."""

import subprocess

import mutagen
import pytest
import soundfile as sf

from server.library import tags
from tests.support.audio import make_music

FORMATS = {"mp3": ["-c:a", "libmp3lame", "-b:a", "128k"], "flac": ["-c:a", "flac"],
           "ogg": ["-c:a", "libvorbis"], "m4a": ["-c:a", "aac", "-b:a", "96k"]}


def make_file(tmp_path, ext, metadata=()):
    wav = tmp_path / "src.wav"
    sf.write(wav, make_music(sr=22050, seconds=4.0), 22050)
    out = tmp_path / f"track.{ext}"
    meta = [x for k, v in metadata for x in ("-metadata", f"{k}={v}")]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *FORMATS[ext], *meta, str(out)], check=True)
    return str(out)


def raw_tags(path):
    """Every tag the file holds, as mutagen reads it (not just the fields we write)."""
    t = mutagen.File(path).tags
    return None if t is None else sorted((str(k), str(v)) for k, v in t.items())


def result(path, genre="jazz", tempo=121.6, content="music"):
    return {"path": path, "genre": genre, "tempo": tempo, "content": content}


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_write_then_undo_restores_tags_exactly_and_never_touches_the_audio(tmp_path, ext):
    path = make_file(tmp_path, ext, metadata=[("title", "Song"), ("artist", "Band")])
    before_tags, before_audio = raw_tags(path), tags.audio_digest(path)
    changes = tags.plan([result(path)])
    assert changes[0].skip is None
    assert "genre (none) → jazz" in changes[0].describe() and "bpm (none) → 122" in changes[0].describe()
    assert raw_tags(path) == before_tags  # planning is a dry run
    log = str(tmp_path / "undo.jsonl")
    assert tags.apply(changes, log) == []
    after = tags.read_fields(path)
    assert after == {"genre": ["jazz"], "bpm": ["122"]}
    assert tags.audio_digest(path) == before_audio
    easy = mutagen.File(path, easy=True)
    assert easy["title"] == ["Song"] and easy["artist"] == ["Band"]  # other fields untouched
    restored, errors = tags.undo(log)
    assert (restored, errors) == (1, [])
    assert raw_tags(path) == before_tags
    assert tags.audio_digest(path) == before_audio


@pytest.mark.parametrize("ext", ["mp3", "flac"])
def test_a_file_without_any_tags_gets_none_back_after_undo(tmp_path, ext):
    path = make_file(tmp_path, ext)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", path, "-map_metadata", "-1", "-c", "copy",
                    "-write_id3v2", "0", "-fflags", "+bitexact", str(tmp_path / f"bare.{ext}")], check=True)
    bare = str(tmp_path / f"bare.{ext}")
    before = raw_tags(bare)
    log = str(tmp_path / "undo.jsonl")
    assert tags.apply(tags.plan([result(bare)]), log) == []
    assert tags.read_fields(bare)["genre"] == ["jazz"]
    tags.undo(log)
    assert raw_tags(bare) == before


def test_existing_genre_is_kept_unless_overwrite_is_asked(tmp_path):
    path = make_file(tmp_path, "flac", metadata=[("genre", "Bebop")])
    [change] = tags.plan([result(path)])
    assert change.skip and "already has a genre: Bebop" in change.skip
    log = str(tmp_path / "undo.jsonl")
    tags.apply([change], log)
    assert tags.read_fields(path)["genre"] == ["Bebop"]
    [change] = tags.plan([result(path)], overwrite=True)
    assert change.skip is None and "genre Bebop → jazz" in change.describe()
    tags.apply([change], log)
    assert tags.read_fields(path)["genre"] == ["jazz"]
    tags.undo(log)
    assert tags.read_fields(path)["genre"] == ["Bebop"]


def test_not_music_and_unsupported_files_are_skipped_with_a_reason(tmp_path):
    path = make_file(tmp_path, "ogg")
    talk = tags.plan([result(path, genre=None, content="speech")])[0]
    assert talk.skip == "not music (speech)"
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio at all" * 10)
    change = tags.plan([result(str(junk))])[0]
    assert change.skip
    assert tags.apply([talk, change], str(tmp_path / "undo.jsonl")) == []


def test_a_bad_undo_log_is_a_clear_error(tmp_path):
    bad = tmp_path / "log.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(tags.TagError, match="cannot read the undo log"):
        tags.undo(str(bad))
