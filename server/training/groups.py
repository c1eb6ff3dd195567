"""Which tracks must stay on one side of a cross-validation split: artist groups.

Validation that lets an artist's tracks sit on both sides of a split measures how well
the model recognises that artist, not the genre, and overstates accuracy on music
it has never heard. Each track's group is the first of these that names one:

- ``file``: a ``--groups FILE`` line ``<track>,<group>`` (``<track>``: the file name,
  its stem, or ``genre/stem``); several files may be given, one per collection;
- ``tags``: the artist (else album artist, else album) in the file's own tags;
- ``split``: GTZAN ids in artist-disjoint split lists (``--split``): a run of
  consecutive ids of one genre in one list, the blocks GTZAN's artists come in;
- ``track``: the track itself.

The rule is chosen per track, so collections that name their artists differently
(GTZAN through an artist file, another collection through its tags) train together
with every artist on one side of each fold. An artist named by a file and by tags is
one group. When fewer than ``MIN_COVERAGE`` of the tracks have an artist, validation is
same-artist (``track``) and says so.
"""

from __future__ import annotations

import os
import re

import numpy as np

from .dataset import DatasetError, Track, read_split

GROUPINGS = ("file", "tags", "split", "track")
ARTIST_DISJOINT = ("file", "tags", "split")
SAME_ARTIST = "track"
_GTZAN_ID = re.compile(r"^([a-z]+)\.(\d{5})$")
# Validation is artist-disjoint when the rules name an artist for at least this share of the tracks.
MIN_COVERAGE = 0.8


def read_groups_file(path: str) -> dict[str, str]:
    """``{track key: group}`` from ``<track>,<group>`` (or tab-separated) lines; ``#`` comments."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise DatasetError(f"Cannot read groups file {path}: {err.strerror}") from err
    groups = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = re.split(r"\t|,", line, maxsplit=1)
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise DatasetError(f"Groups file {path}, line {n}: expected '<track>,<group>', got {line!r}")
        groups[parts[0].strip().replace("\\", "/")] = parts[1].strip()
    return groups


def _lookup(track: Track, table: dict[str, str]) -> str | None:
    name = os.path.basename(track.path)
    for key in (track.track_id, name, os.path.splitext(name)[0], track.path):
        if key in table:
            return table[key]
    return None


def tag_artist(path: str) -> str | None:
    """The artist named in a file's tags (mutagen), else its album artist or album; None if none."""
    import mutagen

    try:
        tags = mutagen.File(path, easy=True)
    except Exception:  # mutagen raises many kinds on damaged or foreign files; no tags then
        return None
    if not tags:
        return None
    for field in ("artist", "albumartist", "album"):
        values = tags.get(field) or []
        if values and str(values[0]).strip():
            return f"{'album' if field == 'album' else 'artist'}:{str(values[0]).strip().lower()}"
    return None


def split_runs(split_files: list[str]) -> dict[str, str]:
    """``{genre/stem: run}`` for GTZAN ids in split lists: consecutive ids of a genre in one list.

    Ids in no list (GTZAN's faulty clips) do not break a run: an artist's block continues past them.
    """
    member = {}
    for path in split_files:
        name = os.path.splitext(os.path.basename(path))[0]
        for track_id in read_split(path):
            member[track_id] = name
    runs: dict[str, str] = {}
    by_genre: dict[str, list[tuple[int, str]]] = {}
    for track_id in member:
        m = _GTZAN_ID.match(track_id.split("/")[-1])
        if m:
            by_genre.setdefault(m.group(1), []).append((int(m.group(2)), track_id))
    for genre, items in by_genre.items():
        run, prev = 0, None
        for _, track_id in sorted(items):
            if prev is not None and member[track_id] != prev:
                run += 1
            prev = member[track_id]
            runs[track_id] = f"{genre}:{member[track_id]}:{run}"
    return runs


def track_groups(tracks: list[Track], *, groups_file: str | list[str] | None = None,
                 split_files: list[str] | None = None, read_tags: bool = True) -> tuple[np.ndarray, str]:
    """``(group index per track, grouping)``: ``grouping`` names the rules that gave the groups,
    joined by ``+`` in ``GROUPINGS`` order (e.g. ``file+tags``), or ``track``."""
    files = [groups_file] if isinstance(groups_file, str) else list(groups_file or [])
    rules = []
    for path in files:
        table = {k: f"artist:{v.strip().lower()}" for k, v in read_groups_file(path).items()}
        if not any(_lookup(t, table) for t in tracks):
            raise DatasetError(f"Groups file {path} names no group for any of the {len(tracks)} tracks "
                               f"(e.g. {', '.join(t.track_id for t in tracks[:3])}): expected "
                               "'<track>,<group>' lines with the tracks' file names or genre/stem.")
        rules.append(("file", lambda t, table=table: _lookup(t, table)))
    if read_tags:
        rules.append(("tags", lambda t: tag_artist(t.path)))
    if split_files:
        runs = split_runs(split_files)
        rules.append(("split", lambda t: (f"block:{runs[t.track_id]}" if t.track_id in runs else None)))
    keys, used = [], []
    for t in tracks:
        for name, rule in rules:
            if (group := rule(t)) is not None:
                keys.append(group)
                used.append(name)
                break
        else:
            keys.append(None)
    if sum(k is not None for k in keys) < MIN_COVERAGE * len(tracks) or not tracks:
        return _index([t.track_id for t in tracks]), SAME_ARTIST
    keys = [k if k is not None else f"track:{t.track_id}" for k, t in zip(keys, tracks)]
    return _index(keys), "+".join(g for g in ARTIST_DISJOINT if g in used)


def _index(keys: list[str]) -> np.ndarray:
    uniq = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.array([uniq[k] for k in keys], dtype=int)


_RULE_TEXT = {"file": "the --groups file(s)", "tags": "the artist in each file's tags",
              "split": "GTZAN id blocks within the split lists"}


def describe(grouping: str) -> str:
    """One line for the user: what a grouping keeps apart."""
    if grouping == SAME_ARTIST:
        return ("same-artist: grouped by track only (no artist information found; figures overstate "
                "accuracy on new artists — pass --groups FILE or --split lists)")
    return "artist-disjoint: " + ", else ".join(_RULE_TEXT[r] for r in grouping.split("+"))
