"""Backbone outputs per track window, cached on disk.

A cache entry holds every output (tags, embedding, mean/max pools) of every backbone
for one file's windows under one audio condition; it is keyed by the file's content
hash, the condition, the window hop, the level normalisation and the backbones, so
renaming or moving files keeps the cache and any change of recipe misses it. A track is
read as a stream (``track_stream``) and its windows computed a batch at a time.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from . import augment
from ..config import N_MELS, WINDOW_FRAMES
from .dataset import LIVE_CAPTURE_SR, LIVE_PATH_VERSION, Track, file_hash
from .track_stream import condition_windows, live_windows

FEATURE_VERSION = 2  # 2: silent frames filled (features.fill_silence)
BACKBONES = ("MSD_musicnn", "MTT_musicnn")
OUTPUTS = ("tags", "embedding", "mean_pool", "max_pool")


def default_cache_dir() -> str:
    base = os.environ.get("GENRE_MONITOR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "genre-monitor")
    return os.path.join(base, "embeddings")


def cache_path(cache_dir: str, content_hash: str, condition: str, hop_s: float, level_norm: bool,
               backbones=BACKBONES) -> str:
    nets = "+".join(b.split("_")[0] for b in backbones)
    if condition == augment.LIVE_CONDITION:
        condition = f"{condition}{LIVE_PATH_VERSION}"
    name = f"{content_hash}-{condition}-h{hop_s:g}-{'norm' if level_norm else 'raw'}-{nets}-v{FEATURE_VERSION}.npz"
    return os.path.join(cache_dir, content_hash[:2], name)


def compute_outputs(mels: np.ndarray, backbones=BACKBONES, level_norm: bool = True,
                    streams=None, levels=None) -> dict[str, np.ndarray]:
    """``{"<backbone>/<output>": (B, d)}`` for log-mel windows (B,187,96), as the live model computes them.

    ``streams`` (one track's live-path windows, in order): normalised per stream, as live;
    ``levels`` (a ``model.level.StreamLevels``) carries that normalisation from batch to batch.
    """
    from ..stream.features import fill_silence
    from ..model.genre_model import backbone_features
    from ..model.level import StreamLevels

    mels = fill_silence(mels)
    if level_norm:
        mels = (levels or StreamLevels())(mels, streams)
    return backbone_features(mels, list(backbones), level_norm=False, streams=streams)


def track_outputs(track: Track, condition: str = "clean", *, hop_s: float = 3.0, level_norm: bool = True,
                  cache_dir: str | None = None, backbones=BACKBONES, stats: dict | None = None) -> dict[str, np.ndarray]:
    """Cached backbone outputs of ``track``'s windows under ``condition``.

    ``stats`` (optional) counts ``hits`` and ``misses``.
    """
    cache_dir = cache_dir or default_cache_dir()
    digest = file_hash(track.path)
    path = cache_path(cache_dir, digest, condition, hop_s, level_norm, backbones)
    if os.path.exists(path):
        try:
            with np.load(path) as z:
                result = {k: z[k] for k in z.files}
            if stats is not None:
                stats["hits"] = stats.get("hits", 0) + 1
            return result
        except (OSError, ValueError, EOFError):
            pass  # a damaged entry is recomputed
    result = _streamed_outputs(track.path, condition, digest, hop_s, level_norm, backbones)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz")  # atomic: no half-written entries
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **result)
    os.replace(tmp, path)
    if stats is not None:
        stats["misses"] = stats.get("misses", 0) + 1
    return result


def _streamed_outputs(path: str, condition: str, digest: str, hop_s: float, level_norm: bool,
                      backbones) -> dict[str, np.ndarray]:
    from ..model.level import StreamLevels

    if condition == augment.LIVE_CONDITION:
        batches = live_windows(path, f"train-{digest[:12]}", LIVE_CAPTURE_SR)
    else:
        batches = ((mels, None) for mels in condition_windows(path, condition, digest, hop_s))
    levels = StreamLevels()
    parts = [compute_outputs(mels, backbones, level_norm, streams, levels) for mels, streams in batches]
    if not parts:  # shorter than the live path's first window
        return compute_outputs(np.zeros((0, WINDOW_FRAMES, N_MELS), np.float32), backbones, level_norm, [])
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def collection_outputs(tracks: list[Track], conditions=("clean",), *, hop_s: float = 3.0, level_norm: bool = True,
                       cache_dir: str | None = None, backbones=BACKBONES, progress: bool = True,
                       stats: dict | None = None, desc: str = "backbone",
                       failed: dict[str, str] | None = None) -> dict[str, list[dict]]:
    """``{condition: [outputs of track i]}`` for every track, with a progress bar.

    With ``failed`` given, a track that cannot be decoded is left out of every condition
    and recorded there (``{path: reason}``); without it, ``DecodeError`` propagates.
    """
    from tqdm import tqdm

    from ..audio.decode import DecodeError

    result: dict[str, list[dict]] = {c: [] for c in conditions}
    with tqdm(total=len(tracks) * len(conditions), desc=desc, unit="track", disable=not progress) as bar:
        for track in tracks:
            try:
                per_condition = [track_outputs(track, condition, hop_s=hop_s, level_norm=level_norm,
                                               cache_dir=cache_dir, backbones=backbones, stats=stats)
                                 for condition in conditions]
            except (DecodeError, OSError) as err:
                if failed is None:
                    raise
                failed[track.path] = str(err) if isinstance(err, DecodeError) else f"cannot read ({err.strerror})"
                bar.update(len(conditions))
                continue
            for condition, out in zip(conditions, per_condition):
                result[condition].append(out)
            bar.update(len(conditions))
    return result
