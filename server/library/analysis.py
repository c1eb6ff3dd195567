"""One track's genre, content and tempo: ``analyse_track`` (fast: a few excerpts read by seeking;
full: every window, streamed) and ``decide``, the file's decision from its windows."""

from __future__ import annotations

import numpy as np

from ..audio.decode import DecodeError, probe
from ..audio.resample import resample
from ..audio.seek import read_excerpts
from ..audio.stream_read import resampled_blocks
from ..audio.window_cutter import WindowCutter
from ..config import DEFAULT_HOP_SECONDS, MODEL_SR, WINDOW_SAMPLES
from ..model.content import MUSIC, majority
from ..model.tempo import analyse_excerpts, estimate_tempo
from ..stream.features import window_mel

FAST_WINDOWS = 8        # model windows spread over a track in the fast analysis
EXCERPT_SECONDS = 8.0   # read around each window: the tempo needs a few bars
FULL_BATCH = 32
FULL_TEMPO_SECONDS = 30.0  # the full analysis estimates the tempo per stretch this long


def excerpt_starts(duration: float, count: int = FAST_WINDOWS, seconds: float = EXCERPT_SECONDS) -> list[float]:
    """Starts of ``count`` excerpts centred on evenly spaced points of the track, inside it."""
    last = max(0.0, duration - seconds)
    return [round(min(last, max(0.0, duration * (i + 0.5) / count - seconds / 2)), 3) for i in range(count)]


def decide(probs: np.ndarray, contents: list[str], model) -> dict:
    """The track's decision as ``classify`` makes it: content is the windows' majority, the genre
    the mean of the music windows' probabilities (all windows when none is music), null when the
    track is not music."""
    is_music = np.array([c == MUSIC for c in contents])
    mean = probs[is_music].mean(axis=0) if is_music.any() else probs.mean(axis=0)
    content = majority(contents)
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
    tempo = analyse_excerpts(excerpts, MODEL_SR)
    return None if tempo is None else round(float(tempo.bpm), 1)


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
    the length; the tempo is the median of its estimates over stretches of ``FULL_TEMPO_SECONDS``."""
    tempi: list[float] = []

    def with_tempo(blocks):
        stretch, held = [], 0
        for block in blocks:
            stretch.append(block)
            held += block.shape[0]
            if held >= FULL_TEMPO_SECONDS * MODEL_SR:
                tempi.append(estimate_tempo(np.concatenate(stretch), MODEL_SR))
                stretch, held = [], 0
            yield block
        if stretch:
            tempi.append(estimate_tempo(np.concatenate(stretch), MODEL_SR))

    windows = WindowCutter(with_tempo(resampled_blocks(path, MODEL_SR)), max(1, int(round(hop_s * MODEL_SR))))
    probs, contents, batch = [], [], []

    def flush():
        if batch:
            a = model.analyse(np.stack(batch))
            probs.append(a.probs)
            contents.extend(a.content)
            batch.clear()

    for _, samples in windows:
        batch.append(window_mel(samples))
        if len(batch) >= FULL_BATCH:
            flush()
    flush()
    if not contents:
        raise DecodeError("no audio samples")
    found = [t for t in tempi if t is not None]
    tempo = round(float(np.median(found)), 1) if found else None
    return {**decide(np.concatenate(probs), contents, model), "tempo": tempo,
            "duration": round(windows.n_samples / MODEL_SR, 3), "mode": "full", "windows": len(contents)}


def analyse_track(path: str, model, full: bool = False) -> dict:
    """The decision for one file; raises ``DecodeError`` for anything that is not audio."""
    return analyse_full(path, model) if full else analyse_fast(path, model)
