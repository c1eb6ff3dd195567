"""A file read as a stream of blocks at a chosen sample rate, or counted: never whole in memory.

The blocks are exactly the samples ``resample(decode(path), sr, sr_out)`` gives (soxr's
streaming resampler matches its one-shot call sample for sample), so results computed from
the stream equal those of the whole-file path while memory stays that of a few seconds.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import soxr

from .decode import open_blocks

# Frames decoded per read (1.5 s at 44.1 kHz): large enough that per-call decoder overhead is small.
BLOCK_FRAMES = 1 << 16


def resampled_blocks(path: str, sr_out: int, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Float32 mono blocks of ``path`` at ``sr_out``.

    ``DecodeError`` as ``decode`` raises it: header problems here, an empty or undecodable
    stream from the iterator. Close the iterator (or exhaust it) to release the file.
    """
    sr_in, blocks = open_blocks(path, block_frames)
    return resampled(blocks, sr_in, sr_out)


def resampled(blocks: Iterator[np.ndarray], sr_in: int, sr_out: int) -> Iterator[np.ndarray]:
    """``blocks`` at ``sr_in`` as blocks at ``sr_out`` (the samples of resampling them joined);
    closing this closes ``blocks``."""
    resampler = None if sr_in == sr_out else soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")
    try:
        for block in blocks:
            out = block if resampler is None else resampler.resample_chunk(block)
            if out.size:
                yield out
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if tail.size:
                yield tail
    finally:
        blocks.close()  # releases the file or the ffmpeg process when the reader stops early


def streamed_seconds(path: str) -> float:
    """The decoded length of ``path`` in seconds, counted block by block (``DecodeError`` if no audio)."""
    sr, blocks = open_blocks(path, BLOCK_FRAMES)
    try:
        n = sum(block.size for block in blocks)
    finally:
        blocks.close()
    return n / float(sr)
