"""Training data for the content head (music / speech / noise), built from real recordings.

Speech: utterances of one validation fold joined into continuous talk (short pauses
between speakers), as radio talk reaches the monitor, then each stretch under one
condition: clean, through a speaker and a room, with real background noise, over a
music bed 10–20 dB below the voice, band-limited like a telephone line, or in a large
reverberant hall (sometimes with an audience's noise). Music: the GTZAN clips, clean,
through the same random capture chains and in a hall (so neither a degraded sound nor
reverberation is a sign of talk) — GTZAN's genres and another collection's electronic,
ambient, pop, rock and classical music. Noise: the background-noise recordings.

Everything is grouped into folds before it is mixed (a speaker, a GTZAN artist block, a
noise recording on one side only), so held-out figures are speaker- and artist-disjoint.
Backbone outputs of every generated stretch are cached under the embedding cache,
keyed by the audio's own hash.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np
from scipy import signal

from ..config import MODEL_SR
from ..stream.features import window_mels
from . import augment
from .dataset import Track, load_audio
from .embeddings import compute_outputs, default_cache_dir

SPEECH_DIRS = ("speech/librispeech", "speech/pyaudioanalysis", "speech/speechbrain")
NOISE_DIRS = ("noise/speech-commands-background", "noise/speechbrain")
SPEECH_CONDITIONS = ("clean", "room", "noise", "bed", "phone", "hall")
# Conditions made here rather than by ``augment`` (for music too, so reverb is no sign of talk).
LOCAL_MUSIC_CONDITIONS = ("hall",)
STRETCH_S = 45.0  # talk is cut into stretches of about this length, each under one condition


def _audio_files(folder: str) -> list[str]:
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if n.lower().endswith((".wav", ".flac", ".ogg", ".mp3")))


def speaker_of(path: str) -> str:
    """The speaker (validation group) of a speech file: LibriSpeech's reader id, SpeechBrain's
    ``spkN``, pyAudioAnalysis's source id (its acted clips share one group)."""
    folder, name = os.path.basename(os.path.dirname(path)), os.path.splitext(os.path.basename(path))[0]
    if folder == "librispeech":
        return f"libri:{name.split('-')[0]}"
    if name.startswith("speechEmotion"):
        return "paa:emotion"
    if name.startswith("speech_s_"):
        return f"paa:{name.split('_')[2]}"
    return f"{folder}:{name.split('_')[0]}"


def fold_of(group: str, k: int) -> int:
    return int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) % k


def _labelled(data_root: str, dirs, label: str, track_id) -> list[Track]:
    out = []
    for d in dirs:
        folder = os.path.join(data_root, d)
        if os.path.isdir(folder):
            out += [Track(p, label, track_id(p)) for p in _audio_files(folder)]
    return out


def speech_tracks(data_root: str) -> list[Track]:
    return _labelled(data_root, SPEECH_DIRS, "speech", lambda p: f"speech/{speaker_of(p)}/{os.path.basename(p)}")


def noise_tracks(data_root: str) -> list[Track]:
    return _labelled(data_root, NOISE_DIRS, "noise", lambda p: f"noise/{os.path.basename(p)}")


def load16(path: str) -> np.ndarray:
    from ..audio.resample import resample

    y, sr = load_audio(path)
    return resample(y, sr, MODEL_SR)


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) + 1e-12


def talk(paths: list[str], rng: np.random.Generator, gap_s=(0.15, 0.7)) -> np.ndarray:
    """The utterances one after another at one speaking level, with short pauses between."""
    parts = []
    for p in paths:
        y = load16(p)
        parts += [y * (0.1 / rms(y)), np.zeros(int(rng.uniform(*gap_s) * MODEL_SR), np.float32)]
    return np.concatenate(parts).astype(np.float32)


def mix_under(voice: np.ndarray, bed: np.ndarray, below_db: float) -> np.ndarray:
    """``bed`` (looped to length) mixed ``below_db`` dB under the voice's RMS."""
    bed = np.resize(bed, len(voice))
    return (voice + bed * (rms(voice) / rms(bed)) * 10.0 ** (-below_db / 20.0)).astype(np.float32)


def hall(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A large reverberant room (a speech in a hall, a PA): RT60 1–2.2 s, the direct sound up to 8 dB
    below the reverberation, at the original's level."""
    rt60 = rng.uniform(1.0, 2.2)
    n = int(MODEL_SR * min(2.5, 1.2 * rt60))
    t = np.arange(n) / MODEL_SR
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.005 * MODEL_SR)] = 0.0
    tail *= 10.0 ** (-rng.uniform(-8.0, 3.0) / 20.0) / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    tail[0] = 1.0
    out = signal.fftconvolve(y.astype(np.float64), tail)[: len(y)]
    return (out * rms(y) / rms(out)).astype(np.float32)


def telephone(y: np.ndarray) -> np.ndarray:
    sos = signal.butter(4, [300.0, 3400.0], btype="bandpass", fs=MODEL_SR, output="sos")
    return signal.sosfilt(sos, y.astype(np.float64)).astype(np.float32)


def speech_condition(y: np.ndarray, condition: str, rng: np.random.Generator, beds: list[np.ndarray],
                     noises: list[np.ndarray]) -> np.ndarray:
    if condition == "room":
        y = augment.speaker_mic(y, MODEL_SR, rng, highpass=rng.uniform(60, 300), lowpass=rng.uniform(3500, 7500),
                                rt60=rng.uniform(0.2, 0.9), drr_db=rng.uniform(-3, 10), snr_db=rng.uniform(10, 30),
                                drive=rng.uniform(0.5, 2.0))
    elif condition == "noise":
        y = mix_under(y, noises[rng.integers(len(noises))], rng.uniform(0.0, 15.0))
    elif condition == "bed":
        y = mix_under(y, beds[rng.integers(len(beds))], rng.uniform(10.0, 20.0))
    elif condition == "phone":
        y = augment.add_noise(telephone(y), rng.uniform(20, 40), rng)
    elif condition == "hall":
        y = hall(y, rng)
        if rng.random() < 0.5:  # an audience
            y = mix_under(y, noises[rng.integers(len(noises))], rng.uniform(10.0, 25.0))
    elif condition != "clean":
        raise ValueError(f"unknown speech condition {condition!r}")
    return y


def cached_outputs(y16: np.ndarray, hop_s: float, cache_dir: str | None = None) -> dict[str, np.ndarray]:
    """Backbone outputs of 16-kHz audio's windows (as training computes them), cached by the audio's hash."""
    digest = hashlib.sha1(np.ascontiguousarray(y16, np.float32).tobytes()).hexdigest()
    folder = os.path.join(cache_dir or os.path.join(os.path.dirname(default_cache_dir()), "content"), digest[:2])
    path = os.path.join(folder, f"{digest}-h{hop_s:g}.npz")
    if os.path.exists(path):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    out = compute_outputs(window_mels(y16, hop_s))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **out)
    os.replace(tmp, path)
    return out


def speech_stretches(tracks: list[Track], k: int, seed: int = 0):
    """Per fold, its speakers' utterances joined and cut into stretches of about ``STRETCH_S``:
    yields ``(fold, stretch index, 16-kHz talk)``."""
    rng = np.random.default_rng(seed)
    for fold in range(k):
        paths = [t.path for t in tracks if fold_of(speaker_of(t.path), k) == fold]
        rng.shuffle(paths)
        y = talk(paths, rng)
        n = max(1, int(round(len(y) / (STRETCH_S * MODEL_SR))))
        for i, part in enumerate(np.array_split(y, n)):
            yield fold, i, part


# Music the content head learns is music: GTZAN's ten genres, and electronic and ambient
# music from another collection (synthetic timbres are no sign of noise).
MUSIC_DIRS = ("gtzan-mini", "gtzan-more", "gtzan-excerpts", "emotify")
ARTIST_FILES = ("gtzan-splits/gtzan_artists.csv", "emotify/artists.csv")


def music_tracks(data_root: str) -> tuple[list[Track], list[str]]:
    """The music clips and their artist groups (the artist files, else GTZAN's split-list id blocks)."""
    from .dataset import list_tracks
    from .groups import track_groups

    tracks = [t for d in MUSIC_DIRS
              if os.path.isdir(os.path.join(data_root, d)) for t in list_tracks(os.path.join(data_root, d))]
    splits = [os.path.join(data_root, "gtzan-splits/gtzan_filtered", f"{s}_filtered.txt")
              for s in ("train", "valid", "test")]
    files = [os.path.join(data_root, f) for f in ARTIST_FILES if os.path.exists(os.path.join(data_root, f))]
    groups, _ = track_groups(tracks, groups_file=files, split_files=[p for p in splits if os.path.exists(p)],
                             read_tags=False)
    return tracks, [f"artist:{g}" for g in groups]


def build_dataset(data_root: str, k: int = 5, music_conditions=("clean", "rand0", "mic0"), hop_s: float = 3.0,
                  progress: bool = True, seed: int = 0) -> dict:
    """Backbone outputs of every training window with its label, fold and how it was made.

    ``{"outputs": {key: (N, d)}, "label", "fold", "kind", "condition"}`` (one entry per window);
    ``kind`` is the genre of a music window, ``speech/<condition>`` or ``noise/<file>``.
    """
    from tqdm import tqdm

    from .embeddings import collection_outputs

    parts, labels, folds, kinds, conds = [], [], [], [], []

    def add(out: dict, label: str, fold: int, kind: str, condition: str = "clean") -> None:
        n = len(next(iter(out.values())))
        parts.append(out)
        labels.extend([label] * n)
        folds.extend([fold] * n)
        kinds.extend([kind] * n)
        conds.extend([condition] * n)

    music, groups = music_tracks(data_root)
    music_fold = [fold_of(g, k) for g in groups]
    per_condition = collection_outputs(music, tuple(c for c in music_conditions if c not in LOCAL_MUSIC_CONDITIONS),
                                       hop_s=hop_s, progress=progress)
    for cond, outs in per_condition.items():
        for t, f, out in zip(music, music_fold, outs):
            add(out, "music", f, t.label, cond)
    for cond in (c for c in music_conditions if c in LOCAL_MUSIC_CONDITIONS):
        for i, (t, f) in enumerate(tqdm(list(zip(music, music_fold)), desc=f"music {cond}", unit="track",
                                        disable=not progress)):
            y = hall(load16(t.path), np.random.default_rng([seed, i, 7]))
            add(cached_outputs(y, hop_s), "music", f, t.label, cond)
    rng = np.random.default_rng(seed)
    beds = {f: [load16(music[i].path) for i in rng.choice(np.flatnonzero(np.array(music_fold) == f),
                                                         size=12, replace=False)] for f in range(k)}
    noise = noise_tracks(data_root)
    noise_audio = [load16(t.path) for t in noise]
    noise_fold = [fold_of(t.track_id, k) for t in noise]
    for t, f, y in zip(noise, noise_fold, noise_audio):
        add(cached_outputs(y, hop_s), "noise", f, f"noise/{os.path.basename(t.path)}")
    stretches = list(speech_stretches(speech_tracks(data_root), k, seed))
    for fold, i, y in tqdm(stretches, desc="speech", unit="stretch", disable=not progress):
        # background noise from recordings outside this fold (white/pink noise is everywhere)
        noises = [a for a, nf in zip(noise_audio, noise_fold) if nf != fold] or noise_audio
        for cond in SPEECH_CONDITIONS:
            crng = np.random.default_rng([seed, fold, i, SPEECH_CONDITIONS.index(cond)])
            add(cached_outputs(speech_condition(y, cond, crng, beds[fold], noises), hop_s), "speech", fold,
                f"speech/{cond}", cond)
    keys = parts[0].keys()
    return {"outputs": {key: np.concatenate([p[key] for p in parts]) for key in keys},
            "label": np.array(labels), "fold": np.array(folds), "kind": np.array(kinds), "condition": np.array(conds)}
