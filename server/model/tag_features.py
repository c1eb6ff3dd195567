"""What the heads read from the backbones' tags: genre and descriptive tags, tag log-odds."""

from __future__ import annotations

import functools

import numpy as np

# Backbone tags that name a genre or style; the rest (instruments, voice, mood,
# decades) are the dashboard's descriptive tags.
GENRE_TAGS = {
    "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz", "metal",
    "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues", "hard rock", "ambient",
    "experimental", "hip-hop", "country", "easy listening", "funk", "electro", "heavy metal",
    "progressive rock", "rnb", "indie pop", "house", "classical", "techno", "indian", "opera", "new age",
    "classic",
}


class TagSet:
    """Descriptive (non-genre) tags of some backbones, deduplicated; a shared name scores the max."""

    def __init__(self, backbones: list[str]):
        from .musicnn import tag_names

        self.backbones = list(backbones)
        self.names: list[str] = []
        self._sources: list[list[tuple[int, int]]] = []
        index: dict[str, int] = {}
        for b, backbone in enumerate(self.backbones):
            for i, name in enumerate(tag_names(backbone)):
                key = name.lower()
                if key in GENRE_TAGS:
                    continue
                if key not in index:
                    index[key] = len(self.names)
                    self.names.append(name)
                    self._sources.append([])
                self._sources[index[key]].append((b, i))

    def scores(self, tags_per_backbone: list[np.ndarray]) -> np.ndarray:
        n = tags_per_backbone[0].shape[0] if tags_per_backbone else 0
        out = np.zeros((n, len(self.names)), np.float32)
        for j, sources in enumerate(self._sources):
            out[:, j] = np.max([tags_per_backbone[b][:, i] for b, i in sources], axis=0)
        return out


# Tag probabilities saturate near 0 and 1, where their differences carry the evidence;
# heads read them as log-odds, clipped where float32 sigmoids stop resolving them.
TAG_LOGIT_CLIP = 1e-4
DERIVED_OUTPUTS = ("tag_logits", "genre_tag_logits")


@functools.cache
def genre_tag_columns(backbone: str) -> tuple[int, ...]:
    """Indices of a backbone's tags that name a genre or style (``GENRE_TAGS``)."""
    from .musicnn import tag_names

    return tuple(i for i, name in enumerate(tag_names(backbone)) if name.lower() in GENRE_TAGS)


def feature(outputs: dict[str, np.ndarray], key: str) -> np.ndarray:
    """One backbone output, or one derived from its tags: ``<backbone>/tag_logits`` (the log-odds
    of every tag) or ``<backbone>/genre_tag_logits`` (those of its genre and style tags)."""
    backbone, name = key.split("/", 1)
    if name not in DERIVED_OUTPUTS:
        return outputs[key]
    p = np.clip(outputs[f"{backbone}/tags"].astype(np.float64), TAG_LOGIT_CLIP, 1.0 - TAG_LOGIT_CLIP)
    if name == "genre_tag_logits":
        p = p[:, list(genre_tag_columns(backbone))]
    return np.log(p / (1.0 - p))


def assemble(outputs: dict[str, np.ndarray], feature_keys: list[str]) -> np.ndarray:
    """Concatenate the chosen (possibly derived, see ``feature``) outputs into one (B, d) matrix."""
    return np.concatenate([feature(outputs, k) for k in feature_keys], axis=1).astype(np.float32)
