"""One classified window as it travels worker → monitor → sinks.

The worker builds a ``ClassifiedWindow`` from the pipeline's ``Window`` and the model's
``Analysis``; the source's monitor returns it with its view filled in (``monitored``);
sinks receive it. It becomes JSON only at the edges (``server.sinks.payloads``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, NamedTuple

import numpy as np

from ..model.content import MUSIC
from ..model.tempo import Tempo

TOP_TAGS = 8  # the non-genre tags a window carries, best first


class Counters(NamedTuple):
    """The source's running counts when the window was classified."""

    windows: int = 0
    skipped: int = 0
    overflows: int = 0


@dataclass(frozen=True, eq=False)
class ClassifiedWindow:
    """The model's outcome for one window and, once monitored, the monitor's view of it.

    ``probs`` are the genre head's whatever the ``content``; a window that is not music has
    no genre (``top`` and ``confidence`` None). ``uncertain`` is the raw window's flag.
    ``tempo`` is the source's over its newest seconds (``model.tempo.LiveTempo``); None when not music.
    """

    source: str
    t: float                     # stream time (s) of the window's last sample
    wall: float                  # unix time when that sample was captured
    model: str
    labels: tuple[str, ...]
    probs: np.ndarray            # (L,) genre probabilities in label order
    tags: tuple[tuple[str, float], ...] = ()  # (name, score) of the top non-genre tags, best first
    content: str = MUSIC
    content_probs: Mapping[str, float] = field(default_factory=dict)
    uncertain: bool = False
    level_db: float | None = None
    counters: Counters = Counters()
    tempo: Tempo | None = None
    # The monitor's view; ``smoothed`` None until a monitor has seen the window.
    smoothed: np.ndarray | None = None
    smoothed_top: str | None = None
    smoothed_uncertain: bool = False
    segment: dict | None = None  # the open segment (``monitor.segments``), or None

    @property
    def is_music(self) -> bool:
        return self.content == MUSIC

    @property
    def top(self) -> str | None:
        return self.labels[int(np.argmax(self.probs))] if self.is_music else None

    @property
    def confidence(self) -> float | None:
        return float(np.max(self.probs)) if self.is_music else None

    def monitored(self, smoothed: np.ndarray, smoothed_top: str | None, smoothed_uncertain: bool,
                  segment: dict | None) -> "ClassifiedWindow":
        """This window with the monitor's view filled in."""
        return replace(self, smoothed=np.asarray(smoothed, dtype=np.float64), smoothed_top=smoothed_top,
                       smoothed_uncertain=bool(smoothed_uncertain), segment=segment)


def classified(window, analysis, i: int, model, counters: Counters, tempo: Tempo | None = None) -> ClassifiedWindow:
    """Window ``i`` of a batch: the pipeline's ``window`` and the model's ``analysis`` of the batch;
    ``tempo`` the source's live tempo, kept only when the window is music."""
    probs = np.asarray(analysis.probs[i], dtype=np.float64)
    tags = np.asarray(analysis.tags[i])
    order = np.argsort(tags)[::-1][:TOP_TAGS]
    content = analysis.content[i]
    return ClassifiedWindow(
        source=window.source_id, t=float(window.t), wall=float(window.wall), model=model.name,
        labels=tuple(model.labels), probs=probs,
        tags=tuple((model.tag_names[j], float(tags[j])) for j in order),
        content=content,
        content_probs=dict(zip(analysis.content_labels, (float(x) for x in analysis.content_probs[i]))),
        uncertain=bool(content == MUSIC and model.is_uncertain(probs)),
        level_db=window.level_db, counters=counters, tempo=tempo if content == MUSIC else None)
