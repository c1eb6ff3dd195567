"""One track's genre, content and tempo: ``analyse_track`` (fast: a few excerpts read by seeking;
full: every window, streamed) and ``decide``, the file's decision from its windows."""

from __future__ import annotations

from collections import Counter

import numpy as np
import soxr

from ..audio.decode import DecodeError, open_blocks, probe
from ..audio.resample import resample
from ..audio.seek import read_excerpts
from ..config import DEFAULT_HOP_SECONDS, MODEL_SR, WINDOW_SAMPLES
from ..model.content import CONTENT_LABELS, MUSIC
from ..model.tempo import estimate_tempo
from ..stream.features import window_mel

FAST_WINDOWS = 8        # model windows spread over a track in the fast analysis
EXCERPT_SECONDS = 8.0   # read around each window: the tempo needs a few bars
FULL_BATCH = 32
FULL_TEMPO_SECONDS = 30.0  # the full analysis estimates the tempo per stretch this long


def excerpt_starts(duration: float, count: int = FAST_WINDOWS, seconds: float = EXCERPT_SECONDS) -> list[float]:
    """Starts of ``count`` excerpts centred on evenly spaced points of the track, inside it."""
    last = max(0.0, duration - seconds)
    return [round(min(last, max(0.0, duration * (i + 0.5) / count - seconds / 2)), 3) for i in range(count)]


def _majority(contents: list[str]) -> str:
    counts = Counter(contents)
    return max(CONTENT_LABELS, key=lambda c: (counts[c], -CONTENT_LABELS.index(c)))


def decide(probs: np.ndarray, contents: list[str], model) -> dict:
    """The track's decision as ``classify`` makes it: content is the windows' majority, the genre
    the mean of the music windows' probabilities (all windows when none is music), null when the
    track is not music."""
    is_music = np.array([c == MUSIC for c in contents])
    mean = probs[is_music].mean(axis=0) if is_music.any() else probs.mean(axis=0)
    content = _majority(contents)
    order = np.argsort(mean)[::-1]
    labels = list(model.labels)
    second = int(order[1]) if len(order) > 1 else None
    return {
        "genre": labels[int(order[0])] if content == MUSIC else None,
        "confidence": round(float(mean[order[0]]), 4),
        "runner_up": labels[second] if second is not None else None,
        "runner_up_confidence": round(float(mean[second]), 4) if second is not None else None,
        "uncertain": bool(model.is_uncertain(mean)),
        "content": content,
        "probabilities": {label: round(float(p), 4) for label, p in zip(labels, mean)},
    }


def _tempo(excerpts: list[np.ndarray]) -> float | None:
    tempi = [t for t in (estimate_tempo(e, MODEL_SR) for e in excerpts) if t is not None]
    return round(float(np.median(tempi)), 1) if tempi else None


def _middle_window(y: np.ndarray) -> np.ndarray:
    if y.shape[0] <= WINDOW_SAMPLES:
        return y
    start = (y.shape[0] - WINDOW_SAMPLES) // 2
    return y[start:start + WINDOW_SAMPLES]


def analyse_fast(path: str, model, windows: int = FAST_WINDOWS) -> dict:
    """``windows`` excerpts spread over the track, read by seeking; one model window from the
    middle of each, the tempo from the whole excerpts. Falls back to the full analysis when the
    file does not say how long it is."""
    info = probe(path)
    duration = info["duration"]
    if not duration:
        return analyse_full(path, model)
    starts = excerpt_starts(duration, windows)
    excerpts, sr = read_excerpts(path, starts, EXCERPT_SECONDS, info)
    excerpts = [resample(e, sr, MODEL_SR) for e in excerpts if e.size]
    mels = np.stack([window_mel(_middle_window(e)) for e in excerpts])
    a = model.analyse(mels)
    return {**decide(a.probs, list(a.content), model), "tempo": _tempo(excerpts),
            "duration": round(float(duration), 3), "mode": "fast", "windows": len(mels)}


def analyse_full(path: str, model, hop_s: float = DEFAULT_HOP_SECONDS) -> dict:
    """Every window every ``hop_s`` (as ``classify``), streamed: memory is a few blocks whatever
    the length."""
    sr, blocks = open_blocks(path, block_frames=1 << 16)
    stream = soxr.ResampleStream(sr, MODEL_SR, 1, dtype="float32") if sr != MODEL_SR else None
    hop = max(1, int(round(hop_s * MODEL_SR)))
    buf = np.zeros(0, np.float32)   # 16-kHz samples from ``offset`` on
    offset = next_start = total = 0
    tempo_buf: list[np.ndarray] = []
    tempo_excerpts_bpm: list[float] = []
    probs, contents, pending = [], [], []

    def flush():
        if pending:
            a = model.analyse(np.stack(pending))
            probs.append(a.probs)
            contents.extend(a.content)
            pending.clear()

    def take(chunk: np.ndarray, last: bool):
        nonlocal buf, offset, next_start, total
        buf = np.concatenate([buf, chunk])
        total += chunk.shape[0]
        tempo_buf.append(chunk)
        if sum(c.shape[0] for c in tempo_buf) >= FULL_TEMPO_SECONDS * MODEL_SR or (last and tempo_buf):
            bpm = estimate_tempo(np.concatenate(tempo_buf), MODEL_SR)
            if bpm is not None:
                tempo_excerpts_bpm.append(bpm)
            tempo_buf.clear()
        while next_start + WINDOW_SAMPLES <= offset + buf.shape[0]:
            s = next_start - offset
            pending.append(window_mel(buf[s:s + WINDOW_SAMPLES]))
            next_start += hop
            if len(pending) >= FULL_BATCH:
                flush()
        drop = max(0, next_start - offset)
        buf, offset = buf[drop:], offset + drop

    for block in blocks:
        take(stream.resample_chunk(block) if stream else block, False)
    take(stream.resample_chunk(np.zeros(0, np.float32), last=True) if stream else np.zeros(0, np.float32), True)
    if total == 0:
        raise DecodeError("no audio samples")
    if not probs and not pending:  # shorter than a window: window_mel left-pads, as classify does
        pending.append(window_mel(buf))
    flush()
    all_probs = np.concatenate(probs)
    tempo = round(float(np.median(tempo_excerpts_bpm)), 1) if tempo_excerpts_bpm else None
    return {**decide(all_probs, contents, model), "tempo": tempo, "duration": round(total / MODEL_SR, 3),
            "mode": "full", "windows": len(contents)}


def analyse_track(path: str, model, full: bool = False) -> dict:
    """The decision for one file; raises ``DecodeError`` for anything that is not audio."""
    return analyse_full(path, model) if full else analyse_fast(path, model)
