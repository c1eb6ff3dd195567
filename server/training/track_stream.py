"""A track read as a stream under an audio condition, cut into model windows a batch at a time.

``clean``, ``gain±N`` and ``srN`` are applied block by block and give exactly the samples of
``augment.apply`` on the whole decoded track (gain is per sample; soxr's streaming resampler
matches its one-shot call). The other conditions (``room``, ``rand<k>``, ``mic<k>``) shape the
whole signal (its RMS, FFT filters, a room), so they are applied to segments of at most
``SEGMENT_SECONDS``: a track that short (every training clip) is transformed exactly as a whole,
a longer one segment by segment, each seeded on its own, in the memory of one segment.
The ``live`` condition goes through the live path itself, a hop at a time.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np

from . import augment
from ..audio.decode import open_blocks
from ..audio.stream_read import BLOCK_FRAMES, resampled
from ..audio.window_cutter import WindowCutter
from ..config import MODEL_SR
from ..stream.features import window_mel

SEGMENT_SECONDS = 600.0  # whole-signal conditions: longer tracks are transformed in segments this long
BATCH_WINDOWS = 64  # windows whose log-mels are held at once


def _gained(blocks: Iterator[np.ndarray], db: float) -> Iterator[np.ndarray]:
    for block in blocks:
        yield augment.apply_gain(block, db)


def _segments(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """``blocks`` regrouped into arrays of ``size`` samples (the last one shorter)."""
    held, n = [], 0
    for block in blocks:
        held.append(block)
        n += block.size
        while n >= size:
            joined = np.concatenate(held)
            yield joined[:size]
            held, n = [joined[size:]], n - size
    if n:
        yield np.concatenate(held)


def _segmented(blocks: Iterator[np.ndarray], sr: int, condition: str, content_hash: str,
               hop_s: float, segment_s: float) -> tuple[Iterator[np.ndarray], float]:
    """A whole-signal condition applied segment by segment; the window offset is the first segment's."""
    segments = _segments(blocks, max(1, int(segment_s * sr)))
    first = next(segments, np.zeros(0, np.float32))
    y16, offset = augment.apply(first, sr, condition, content_hash, hop_s)

    def rest() -> Iterator[np.ndarray]:
        for i, segment in enumerate(segments, start=1):
            # Each later segment draws its own conditions: the first keeps the whole-track seed.
            yield augment.apply(segment, sr, condition, f"{content_hash}/{i}", hop_s)[0]

    return itertools.chain([y16], rest()), offset


def condition_blocks(path: str, condition: str, content_hash: str = "", hop_s: float = 3.0,
                     segment_s: float = SEGMENT_SECONDS) -> tuple[Iterator[np.ndarray], float]:
    """``(16-kHz blocks, window offset in seconds)`` of the file at ``path`` under ``condition``,
    as ``augment.apply`` gives them for the whole decoded track (see the module's note)."""
    gain = augment.GAIN_CONDITION.fullmatch(condition)
    capture = augment.CAPTURE_CONDITION.fullmatch(condition)
    whole_signal = condition == "room" or augment.CHAIN_CONDITION.fullmatch(condition)
    if not (condition == "clean" or gain or capture or whole_signal):
        augment.apply(np.zeros(1, np.float32), MODEL_SR, condition)  # raises UnknownCondition, naming the known
        raise AssertionError(condition)
    sr, blocks = open_blocks(path, BLOCK_FRAMES)
    if whole_signal:
        return _segmented(blocks, sr, condition, content_hash, hop_s, segment_s)
    if gain:
        blocks = _gained(blocks, float(gain.group(1)))
    if capture:
        blocks, sr = resampled(blocks, sr, int(capture.group(1))), int(capture.group(1))
    return resampled(blocks, sr, MODEL_SR), 0.0


def _batched(windows: Iterator, size: int) -> Iterator[list]:
    while batch := list(itertools.islice(windows, size)):
        yield batch


def condition_windows(path: str, condition: str, content_hash: str = "", hop_s: float = 3.0,
                      batch: int = BATCH_WINDOWS) -> Iterator[np.ndarray]:
    """Batches of log-mel windows (b, 187, 96) of a track under a (non-live) condition: the windows
    of ``window_mels`` on the whole transformed track, every ``hop_s`` from the condition's offset."""
    blocks, offset_s = condition_blocks(path, condition, content_hash, hop_s)
    cutter = WindowCutter(blocks, max(1, int(round(hop_s * MODEL_SR))), int(round(offset_s * MODEL_SR)))
    for group in _batched(iter(cutter), batch):
        yield np.stack([window_mel(samples) for _, samples in group])


def live_windows(path: str, source_id: str, capture_sr: int, hop_s: float = 1.0,
                 batch: int = BATCH_WINDOWS) -> Iterator[tuple[np.ndarray, list]]:
    """Batches ``(log-mels, stream keys)`` the live path makes of a track captured at ``capture_sr``,
    arriving one hop at a time (as ``stream.pipeline.live_windows`` does for a whole signal)."""
    from ..stream.pipeline import Pipeline, PushSource

    sr, blocks = open_blocks(path, BLOCK_FRAMES)
    pipeline = Pipeline(source_id, PushSource(capture_sr), hop_s=hop_s)

    def windows():
        for block in _segments(resampled(blocks, sr, capture_sr), max(1, int(round(hop_s * capture_sr)))):
            pipeline.on_block(block)
            while (w := pipeline.next_window()) is not None:
                yield w

    for group in _batched(windows(), batch):
        yield np.stack([w.mel for w in group]), [w.stream for w in group]
