"""Which window to classify next: one per hop, jumping ahead when behind.

Positions are absolute sample indices at the source's native rate. Windows end
on a grid ``first + k·hop``; ``first`` (default: one window) may be shorter than a
window, for a stream's first seconds. When more than one window is ready, the worker
takes the newest and counts the others as skipped, so it never builds a backlog.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WindowScheduler:
    window: int  # samples in one window
    hop: int     # samples between window ends
    next_end: int = 0
    skipped: int = 0
    lossless: bool = False  # batch mode: take every window in turn, never skip
    first: int = 0  # end of the first window (0: one full window)

    def __post_init__(self):
        if self.window <= 0 or self.hop <= 0:
            raise ValueError("window and hop must be positive")
        self.first = min(self.first, self.window) if self.first > 0 else self.window
        self.next_end = max(self.next_end, self.first)

    def poll(self, written: int) -> int | None:
        """The end index of the window to classify now, or None if none is ready."""
        if written < self.next_end:
            return None
        behind = 0 if self.lossless else (written - self.next_end) // self.hop
        end = self.next_end + behind * self.hop
        self.skipped += behind
        self.next_end = end + self.hop
        return end

    def restart_at(self, written: int) -> None:
        """Resume from the newest data without counting skips (e.g. after a model load)."""
        if written >= self.first:
            self.next_end = self.first + ((written - self.first) // self.hop) * self.hop
        else:
            self.next_end = self.first
