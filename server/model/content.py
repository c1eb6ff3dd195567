"""What a window holds before it has a genre: music, speech, silence or noise.

``CONTENT_LABELS`` are the contract's names (payloads, history, exports, the dashboard,
which receives them in the ``sources`` event). Speech and noise come from a small head on
the backbone outputs the genre head already has (``ContentHead``: standardise, one
logistic-regression layer, softmax; weights in ``models/content/`` read with numpy);
silence is a level rule, since the heads see level-normalised windows and cannot hear
how loud a window is. Talk over a music bed is speech; music with vocals, rap included,
is music.
"""

from __future__ import annotations

import json
from collections import Counter
import logging
import os

import numpy as np

from ..stream.features import mean_power_db

MUSIC, SPEECH, SILENCE, NOISE = "music", "speech", "silence", "noise"
CONTENT_LABELS = (MUSIC, SPEECH, SILENCE, NOISE)
NOT_MUSIC = (SPEECH, SILENCE, NOISE)


def majority(contents: list[str]) -> str:
    """A file's content: the most frequent of its windows' (ties go to the earlier of ``CONTENT_LABELS``)."""
    counts = Counter(contents)
    return max(CONTENT_LABELS, key=lambda c: (counts[c], -CONTENT_LABELS.index(c)))
# A window whose level (``window_level_db``, ≈ dBFS RMS) is below this is silence: dead
# air, a long pause between items, a muted input.
SILENCE_BELOW_DB = -60.0
# Music and speech at L dBFS RMS have a mean mel power of about L + 11.5 dB with this
# front-end (GTZAN and LibriSpeech within ±1 dB; broadband noise reads up to 4 dB low).
_MEL_DB_AT_0_DBFS = 11.5

CONTENT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "models", "content")
FORMAT = "genre-monitor-content"

log = logging.getLogger(__name__)


def window_level_db(mel: np.ndarray) -> np.ndarray:
    """Per log-mel window (B,187,96) its level: mean mel power in dB, shifted to read ≈ dBFS RMS."""
    return mean_power_db(mel) - _MEL_DB_AT_0_DBFS


class ContentError(Exception):
    """The content head's files are missing or damaged; message for the user."""


class ContentHead:
    """Backbone outputs → (content label per window, probabilities over ``head_labels``).

    ``model.json``: ``{"format", "labels": ["music", "speech", "noise"], "keys": [...],
    "backbones": [...], "thresholds": {"speech": t, "noise": t}}``; ``weights.npz``: ``mean,
    scale, W, b``. A window is speech when P(speech) ≥ its threshold, else noise when
    P(noise) ≥ its threshold, else music; silence (the level rule) overrides all three.
    """

    def __init__(self, directory: str = CONTENT_DIR):
        path = os.path.join(directory, "model.json")
        try:
            with open(path, encoding="utf-8") as f:
                meta = json.load(f)
            if meta.get("format") != FORMAT:
                raise ContentError(f"{path}: not a content head")
            with np.load(os.path.join(directory, "weights.npz")) as z:
                self.weights = {k: z[k].astype(np.float64) for k in ("mean", "scale", "W", "b")}
        except (OSError, ValueError, KeyError) as err:
            raise ContentError(f"Cannot read the content head in {directory}: {err}") from err
        self.meta = meta
        self.head_labels = list(meta["labels"])
        self.keys = list(meta["keys"])
        self.backbones = list(meta["backbones"])
        self.thresholds = {k: float(v) for k, v in meta["thresholds"].items()}
        self.silence_below_db = float(meta.get("silence_below_db", SILENCE_BELOW_DB))
        if self.weights["W"].shape != (len(self.weights["mean"]), len(self.head_labels)):
            raise ContentError(f"{directory}: weights do not match {len(self.head_labels)} labels")

    def probabilities(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        from .tag_features import assemble

        w = self.weights
        z = ((assemble(outputs, self.keys) - w["mean"]) / w["scale"]) @ w["W"] + w["b"]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def decide(self, probs: np.ndarray, level_db: np.ndarray) -> list[str]:
        out = []
        col = {lab: i for i, lab in enumerate(self.head_labels)}
        for p, level in zip(probs, level_db):
            if level < self.silence_below_db:
                out.append(SILENCE)
            elif SPEECH in col and p[col[SPEECH]] >= self.thresholds.get(SPEECH, 0.5):
                out.append(SPEECH)
            elif NOISE in col and p[col[NOISE]] >= self.thresholds.get(NOISE, 0.5):
                out.append(NOISE)
            else:
                out.append(MUSIC)
        return out


_head: ContentHead | None = None
_loaded = False


def default_head() -> ContentHead | None:
    """The installed content head (``models/content``), or None (then only silence is told apart)."""
    global _head, _loaded
    if not _loaded:
        _loaded = True
        try:
            _head = ContentHead()
        except ContentError as err:
            log.warning("%s: speech and noise will be reported as music", err)
    return _head
