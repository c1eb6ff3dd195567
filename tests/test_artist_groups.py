"""Artist-disjoint validation groups, bad collections, and windows with silence in them."""

import os

import mutagen.flac
import numpy as np
import pytest

from server.cli import build_parser
from server.stream.features import MIN_ACTIVE_FRAMES, fill_silence, window_mel
from server.training.dataset import DatasetError, check_label_counts, list_tracks, scan_collection
from server.training.groups import describe, split_runs, track_groups
from server.training.head import grouped_folds
from tests.support.training import make_collection


def _write_lists(tmp_path, lists):
    paths = []
    for name, ids in lists.items():
        p = tmp_path / f"{name}.txt"
        p.write_text("".join(f"{i.split('.')[0]}/{i}.wav\n" for i in ids))
        paths.append(str(p))
    return paths


def test_split_runs_follow_id_blocks_and_skip_unlisted_ids(tmp_path):
    paths = _write_lists(tmp_path, {
        "train": ["rock.00000", "rock.00001", "rock.00004", "rock.00005"],
        "valid": ["rock.00002", "rock.00003"],
    })
    runs = split_runs(paths)
    assert runs["rock/rock.00000"] == runs["rock/rock.00001"]
    assert runs["rock/rock.00002"] == runs["rock/rock.00003"] != runs["rock/rock.00001"]
    assert runs["rock/rock.00004"] not in (runs["rock/rock.00001"], runs["rock/rock.00002"])
    # An id in no list (a faulty clip taken out) does not cut an artist's block in two.
    paths = _write_lists(tmp_path, {"train": ["jazz.00000", "jazz.00002"], "valid": ["jazz.00005"]})
    runs = split_runs(paths)
    assert runs["jazz/jazz.00000"] == runs["jazz/jazz.00002"] != runs["jazz/jazz.00005"]


def test_groups_come_from_a_file_then_tags_then_splits_then_tracks(tmp_path):
    data = make_collection(str(tmp_path / "d"), per_genre=4, seconds=0.5, fmt="flac")
    tracks = list_tracks(data)
    groups, how = track_groups(tracks)
    assert how == "track" and len(set(groups)) == len(tracks) and "same-artist" in describe(how)

    lists = _write_lists(tmp_path, {"train": ["chirp.00000", "chirp.00001", "clicks.00000", "drone.00003"],
                                    "valid": ["chirp.00002", "chirp.00003", "clicks.00001", "clicks.00002",
                                              "clicks.00003", "drone.00000", "drone.00001", "drone.00002"]})
    groups, how = track_groups(tracks, split_files=lists)
    assert how == "split"
    by_id = dict(zip((t.track_id for t in tracks), groups))
    assert by_id["chirp/chirp.00000"] == by_id["chirp/chirp.00001"] != by_id["chirp/chirp.00002"]

    for t in tracks:  # artist tags written into the files win over the split lists
        f = mutagen.flac.FLAC(t.path)
        f["artist"] = "Band " + t.track_id[-1]
        f.save()
    groups, how = track_groups(tracks, split_files=lists)
    assert how == "tags" and len(set(groups)) == 4

    table = tmp_path / "groups.csv"
    table.write_text("# track,group\n" + "".join(f"{t.track_id},{t.label}\n" for t in tracks))
    groups, how = track_groups(tracks, groups_file=str(table))
    assert how == "file" and len(set(groups)) == 3
    table.write_text("nothing.00000,x\n")
    with pytest.raises(DatasetError, match="names no group"):
        track_groups(tracks, groups_file=str(table))


def test_each_collection_names_its_artists_its_own_way(tmp_path):
    """One collection's artists from a groups file, another's from tags: every artist on one side."""
    from server.training.dataset import list_collections

    a = make_collection(str(tmp_path / "a"), genres=("chirp", "drone"), per_genre=4, seconds=0.5, fmt="flac")
    b = make_collection(str(tmp_path / "b"), genres=("chirp", "drone"), per_genre=4, seconds=0.5, fmt="flac")
    for genre in ("chirp", "drone"):  # another collection's own file names
        for name in os.listdir(os.path.join(b, genre)):
            os.rename(os.path.join(b, genre, name), os.path.join(b, genre, "b-" + name))
    tracks = list_collections([f"one={a}", f"two={b}"])
    assert {t.collection for t in tracks} == {"one", "two"}
    table = tmp_path / "artists.csv"  # collection one: two artists per genre, from the file
    table.write_text("".join(f"{t.track_id},Artist {t.label} {int(t.track_id[-1]) // 2}\n"
                             for t in tracks if t.collection == "one"))
    for t in tracks:  # collection two: its tags; one artist shared with collection one, in another case
        if t.collection == "two":
            f = mutagen.flac.FLAC(t.path)
            f["artist"] = "ARTIST CHIRP 0" if t.track_id.endswith("00000") else f"Band {t.label}"
            f.save()
    groups, how = track_groups(tracks, groups_file=[str(table)])
    assert how == "file+tags" and "artist-disjoint" in describe(how)
    key = {(t.collection, t.track_id): g for t, g in zip(tracks, groups)}
    assert key[("two", "chirp/b-chirp.00000")] == key[("one", "chirp/chirp.00000")]  # the same artist
    assert key[("two", "drone/b-drone.00000")] == key[("one", "chirp/chirp.00001")]
    assert key[("two", "chirp/b-chirp.00001")] != key[("one", "chirp/chirp.00003")]
    assert len(set(groups)) == 6  # one: 4 artists; two: 2 bands (and the artist it shares)
    # Too few tracks with an artist: same-artist validation, said so.
    groups, how = track_groups(tracks[:2] + [t for t in tracks if t.collection == "two"][:1], read_tags=False)
    assert how == "track" and "same-artist" in describe(how)


def test_grouped_folds_keep_groups_together():
    labels = np.repeat(np.arange(3), 8)
    groups = np.arange(24) // 2  # two tracks per artist
    for seed in range(3):
        folds = grouped_folds(labels, 4, seed, groups)
        assert sorted(np.concatenate([te for _, te in folds])) == list(range(24))
        for tr, te in folds:
            assert not set(groups[tr]) & set(groups[te])


def test_bad_collections_are_reported_not_raised(tmp_path):
    data = make_collection(str(tmp_path / "d"), per_genre=2, seconds=0.5)
    os.symlink(str(tmp_path / "gone.wav"), os.path.join(data, "chirp", "dangling.wav"))
    os.makedirs(os.path.join(data, "empty"))
    tracks, skipped = scan_collection(data)
    assert len(tracks) == 6
    assert "broken link" in skipped[os.path.join(data, "chirp", "dangling.wav")]
    assert "no audio files" in skipped[os.path.join(data, "empty")]
    with pytest.raises(DatasetError, match="drone"):
        check_label_counts([t for t in tracks if t.track_id != "drone/drone.00001"])


@pytest.mark.parametrize("setup, message", [
    ("one-track genre", "fewer than 2 readable tracks"),
    ("dangling link only", "fewer than 2 readable tracks"),
    ("unreadable file", "fewer than 2 readable tracks"),
    ("empty", "No audio files"),
])
def test_train_gives_a_clear_error_on_bad_collections(tmp_path, capsys, setup, message):
    data = str(tmp_path / "d")
    if setup == "empty":
        os.makedirs(os.path.join(data, "rock"))
    else:
        make_collection(data, genres=("chirp", "drone"), per_genre=2, seconds=4.0)
        os.remove(os.path.join(data, "drone", "drone.00001.wav"))
        if setup == "dangling link only":
            os.symlink(str(tmp_path / "nowhere.wav"), os.path.join(data, "drone", "drone.00001.wav"))
        elif setup == "unreadable file":
            with open(os.path.join(data, "drone", "drone.00001.wav"), "wb") as f:
                f.write(b"RIFF\x00\x00not audio at all" * 10)
    args = build_parser().parse_args(["train", data, "--out", str(tmp_path / "m"), "--quick", "--augment", "0",
                                      "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_evaluate_reports_a_dangling_link_and_goes_on(tmp_path, capsys):
    data = make_collection(str(tmp_path / "d"), genres=("rock", "jazz"), per_genre=1, seconds=3.5)
    os.symlink(str(tmp_path / "gone.flac"), os.path.join(data, "rock", "rock.00009.flac"))
    args = build_parser().parse_args(["evaluate", data, "--model", "zeroshot", "--quiet", "--json"])
    assert args.func(args) == 0
    import json
    report = json.loads(capsys.readouterr().out)
    assert report["n_tracks"] == 2
    assert any("broken link" in why for why in report["failed_tracks"].values())


def _tone(seconds, f=440.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_fill_silence_loops_a_short_clip_and_leaves_full_windows_alone():
    full = window_mel(_tone(3.1))[None]
    assert fill_silence(full) is full
    short = window_mel(_tone(2.0))[None]  # zero-padded at the front to 3 s
    silent = short[0].max(axis=1) < 1e-3
    assert silent.sum() > 50
    filled = fill_silence(short)
    assert (filled[0].max(axis=1) > 1e-3).all()
    # The sound itself, looped: every filled frame is one of the clip's own frames.
    own = {r.tobytes() for r in short[0][~silent]}
    assert all(r.tobytes() in own for r in filled[0])
    # Too little sound to fill a window with: left as it is.
    blip = window_mel(_tone((MIN_ACTIVE_FRAMES - 10) * 256 / 16000))[None]
    assert np.array_equal(fill_silence(blip), blip)


def test_a_pause_is_filled_and_the_model_sees_a_full_window():
    from server.model.registry import load_model

    y = _tone(3.1)
    y[16000:32000] = 0.0  # a one-second pause
    mel = window_mel(y)[None]
    model = load_model("zeroshot")
    looped = window_mel(np.tile(np.concatenate([y[:16000], y[32000:]]), 2)[:48128])[None]
    p_pause, _ = model.predict(mel)
    p_full, _ = model.predict(fill_silence(mel))
    np.testing.assert_array_equal(p_pause, p_full)  # predict fills the pause itself
    assert np.abs(p_pause - model.predict(looped)[0]).max() < 0.2


def test_rests_between_notes_are_kept_and_edges_filled():
    y = _tone(3.1)
    for start in range(4000, 48128, 8000):  # 0.25-s rests: rhythm, not gaps
        y[start:start + 4000] = 0.0
    mel = window_mel(y)[None]
    assert np.array_equal(fill_silence(mel), mel)
    edge = window_mel(_tone(2.8))[None]  # 0.2 s of padding at the start
    assert (edge[0, :5].max(axis=1) < 1e-3).all()
    assert (fill_silence(edge)[0].max(axis=1) > 1e-3).all()


def test_zero_shot_prior_mixes_only_the_genres_the_tags_name():
    from server.model.musicnn import tag_names
    from server.model.zeroshot import shrink_toward_tags

    labels = ["reggae", "rock", "jazz"]
    rng = np.random.default_rng(4)
    outputs = {f"{b}/tags": rng.uniform(0, 1, (5, len(tag_names(b)))).astype(np.float32)
               for b in ("MSD_musicnn", "MTT_musicnn")}
    rock = tag_names("MSD_musicnn").index("rock")
    outputs["MSD_musicnn/tags"][:, rock] = 0.99  # the tags say rock
    probs = np.tile(np.array([[0.2, 0.1, 0.7]], np.float32), (5, 1))
    mixed = shrink_toward_tags(probs, outputs, labels, 0.5)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(mixed[:, 0], 0.2, atol=1e-6)  # no tag names reggae: the head's own share
    assert (mixed[:, 1] > probs[:, 1]).all()
    assert np.array_equal(shrink_toward_tags(probs, outputs, labels, 0.0), probs)


def test_a_head_with_the_prior_round_trips(tmp_path):
    from server.model.heads import load_directory
    from server.training.train import train_head
    from tests.support.training import trained_model

    _, data, cache = trained_model()
    labels_dir = tmp_path / "d"
    for src, genre in zip(sorted(os.listdir(data)), ("rock", "jazz", "reggae")):
        os.symlink(os.path.join(data, src), labels_dir / genre if labels_dir.exists() else
                   (labels_dir.mkdir() or labels_dir / genre))
    meta = train_head(str(labels_dir), str(tmp_path / "m"), n_augment=0, grid=[("tags", {"kind": "logreg", "C": 0.1})],
                      n_splits=3, repeats=1, hop_s=1.0, cache_dir=cache, progress=False, log=lambda *a: None)
    names = [c["name"] for c in meta["cross_validation"]["candidates"]]
    assert len(names) == 3 and sum("zero-shot" in n for n in names) == 2
    model = load_directory(str(tmp_path / "m"))
    assert model.prior == meta["head"].get("prior")
    assert meta["version"] == (4 if model.prior else 1)
    mel = np.random.default_rng(0).uniform(0, 3, (2, 187, 96)).astype(np.float32)
    probs, _ = model.predict(mel)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_collections_are_balanced_within_a_genre_and_held_out_whole():
    from server.training.head import balance_weights
    from server.training.train import collection_folds

    y = np.array([0] * 30 + [0] * 10 + [1] * 5)  # genre 0: 30 windows of one collection, 10 of another
    cells = np.array([0] * 30 + [1] * 10 + [1] * 5)
    w = balance_weights(y, cells)
    assert w[:30].sum() == pytest.approx(w[30:40].sum()) == pytest.approx(w[40:].sum() / 2)
    assert w.mean() == pytest.approx(1.0)
    collection = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([0, 1, 0, 1, 0, 1])
    folds = collection_folds(collection, labels)
    assert [list(te) for _, te in folds] == [[0, 1, 2], [3, 4], [5]]
    assert all(not set(tr) & set(te) for tr, te in folds)


def test_split_lists_filter_only_the_collection_they_name(tmp_path):
    from server.training.dataset import filter_split, list_collections

    a = make_collection(str(tmp_path / "a"), genres=("chirp", "drone"), per_genre=2, seconds=0.5)
    b = make_collection(str(tmp_path / "b"), genres=("hum",), per_genre=2, seconds=0.5)
    tracks = list_collections([f"listed={a}", str(b)])
    lists = _write_lists(tmp_path, {"train": ["chirp.00000", "drone.00001"]})
    kept = filter_split(tracks, lists)
    assert sorted(t.track_id for t in kept) == ["chirp/chirp.00000", "drone/drone.00001", "hum/hum.00000",
                                                "hum/hum.00001"]
    assert {t.collection for t in kept} == {"listed", "b"}


def test_training_on_two_collections_scores_each_held_out_whole(tmp_path):
    from server.training.train import train_head
    from tests.support.training import trained_model

    _, _, cache = trained_model()
    a = make_collection(str(tmp_path / "a"), genres=("chirp", "drone", "clicks"), per_genre=3, seconds=3.5)
    b = make_collection(str(tmp_path / "b"), genres=("chirp", "drone"), per_genre=3, seconds=3.5, seed=5)
    meta = train_head([f"one={a}", f"two={b}"], str(tmp_path / "m"), n_augment=0,
                      grid=[("tags", {"kind": "logreg", "C": 0.1, "balanced": True})], n_splits=2, repeats=1,
                      hop_s=1.0, cache_dir=cache, progress=False, log=lambda *a: None)
    cv = meta["cross_validation"]
    assert cv["collections"] == ["one", "two"]
    assert set(cv["conditions"]["clean"]["by_collection"]) == {"one", "two"}
    loco = cv["leave_one_collection_out"]
    # Held out whole, each is scored on the genres the other one teaches: never on clicks.
    assert loco["one"]["genres_scored"] == ["chirp", "drone"] and loco["one"]["trained_on"] == ["two"]
    assert loco["one"]["n_tracks"] == 6 and loco["two"]["n_tracks"] == 6
    assert all(c["loco_score"] is not None and c["score"] == pytest.approx((c["cv_score"] + c["loco_score"]) / 2)
               for c in cv["candidates"])
