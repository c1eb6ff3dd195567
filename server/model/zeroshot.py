"""Zero-shot genre model: the backbones' own genre tags, without any training.

The fallback until a trained head is installed, and the baseline the model card
compares against. Each genre (GTZAN's ten, and electronic music) scores the highest
of the MSD/MTT tags that name it; the scores are normalised into a distribution.
Neither tag vocabulary has reggae (nor disco: ``dance`` and ``funk`` stand in), so
the model's labels are the genres it can name.
"""

from __future__ import annotations

import numpy as np

from .genre_model import GenreModel, backbone_features
from .tag_features import TagSet

BACKBONES = ["MSD_musicnn", "MTT_musicnn"]

# Genre → (backbone, tag) pairs that name it.
TAGS_OF_GENRE: dict[str, list[tuple[str, str]]] = {
    "blues": [("MSD_musicnn", "blues")],
    "classical": [("MTT_musicnn", "classical")],
    "country": [("MSD_musicnn", "country"), ("MTT_musicnn", "country")],
    "disco": [("MSD_musicnn", "dance"), ("MSD_musicnn", "funk"), ("MTT_musicnn", "dance")],
    # MTT's techno and synth, and both ambient tags, also fire on hip-hop, metal or classical
    "electronic": [("MSD_musicnn", "electronic"), ("MSD_musicnn", "electronica"), ("MSD_musicnn", "electro"),
                   ("MSD_musicnn", "House"), ("MTT_musicnn", "electronic")],
    "hiphop": [("MSD_musicnn", "Hip-Hop"), ("MSD_musicnn", "rnb")],
    "jazz": [("MSD_musicnn", "jazz")],
    "metal": [("MSD_musicnn", "metal"), ("MSD_musicnn", "heavy metal"), ("MTT_musicnn", "metal")],
    "pop": [("MSD_musicnn", "pop"), ("MTT_musicnn", "pop")],
    "reggae": [],
    "rock": [("MSD_musicnn", "rock"), ("MSD_musicnn", "classic rock"), ("MSD_musicnn", "hard rock"),
             ("MTT_musicnn", "rock")],
}
ZEROSHOT_LABELS = [g for g, tags in TAGS_OF_GENRE.items() if tags]


def genre_scores(outputs: dict[str, np.ndarray], genres: list[str]) -> np.ndarray:
    """Distribution over ``genres`` from backbone tag outputs; a genre without tags gets 0."""
    from .musicnn import tag_names

    n = next(iter(outputs.values())).shape[0]
    scores = np.zeros((n, len(genres)), np.float64)
    for j, genre in enumerate(genres):
        for backbone, tag in TAGS_OF_GENRE.get(genre, []):
            col = outputs[f"{backbone}/tags"][:, tag_names(backbone).index(tag)]
            scores[:, j] = np.maximum(scores[:, j], col)
    total = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / len(genres))
    return np.where(total > 0, scores / np.maximum(total, 1e-12), uniform).astype(np.float32)


def shrink_toward_tags(probs: np.ndarray, outputs: dict[str, np.ndarray], labels: list[str],
                       weight: float) -> np.ndarray:
    """A trained head's probabilities pulled toward the tag map's, on the genres the map names.

    The head learns from a few artists per genre; the backbones' genre tags were learned
    from 200k tracks, so mixing them in (``(1 − w)·head + w·tags``) carries that knowledge
    to artists the head never heard. The tag map's distribution is spread over the mass
    the head gives the named genres; genres no tag names (reggae) keep the head's own.
    """
    named = np.array([bool(TAGS_OF_GENRE.get(g)) for g in labels])
    if weight <= 0 or not named.any():
        return probs
    tags = genre_scores(outputs, labels)[:, named].astype(np.float64)
    tags /= np.maximum(tags.sum(axis=1, keepdims=True), 1e-12)
    out = np.array(probs, dtype=np.float64)
    mass = out[:, named].sum(axis=1, keepdims=True)
    out[:, named] = (1.0 - weight) * out[:, named] + weight * tags * mass
    return out.astype(np.float32)


class ZeroShotModel(GenreModel):
    """Genre distribution straight from the backbones' genre tags."""

    def __init__(self):
        super().__init__()
        self.name = "zeroshot"
        self.labels = list(ZEROSHOT_LABELS)
        self.uncertain_threshold = None  # uncalibrated: it never claims to know when it does not
        self.description = ("Zero-shot: musicnn MSD/MTT genre tags mapped to GTZAN genres, no training "
                            "(no reggae tag exists).")
        self.tagset = TagSet(BACKBONES)
        self.tag_names = self.tagset.names

    def _predict(self, mel, streams=None):
        outputs = backbone_features(mel, BACKBONES, level_norm=True)
        return (genre_scores(outputs, self.labels),
                self.tagset.scores([outputs[f"{b}/tags"] for b in BACKBONES]), outputs)
