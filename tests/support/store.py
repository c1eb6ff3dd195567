"""Helpers for history tests: prediction payloads and a tiny tmpfs to fill up."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile

LABELS = ["blues", "classical", "jazz", "rock"]


def prediction(source: str, wall: float, top: str = "jazz", confidence: float = 0.7, t: float | None = None,
               uncertain: bool = False, **extra) -> dict:
    """A `prediction` event payload (docs/events.md) whose top genre is ``top``."""
    rest = (1.0 - confidence) / (len(LABELS) - 1)
    probs = [round(confidence if lab == top else rest, 5) for lab in LABELS]
    p = {"source": source, "t": wall - 1000.0 if t is None else t, "wall": wall, "model": "test",
         "labels": list(LABELS), "probs": probs, "top": top, "confidence": confidence,
         "uncertain": uncertain, "tags": [], "counters": {"windows": 0, "skipped": 0, "overflows": 0}}
    p.update(extra)
    return p


@contextlib.contextmanager
def tiny_tmpfs(size: str = "512k"):
    """Mount a tmpfs of ``size`` (needs root); yields its path, or None when mounting is not allowed."""
    path = tempfile.mkdtemp(prefix="genre-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(path)
        yield None, (r.stderr or r.stdout).strip()
        return
    try:
        yield path, None
    finally:
        subprocess.run(["umount", "-l", path], capture_output=True)
        with contextlib.suppress(OSError):
            os.rmdir(path)


def fill_disk(directory: str) -> str:
    """Write a file until the filesystem is full; return its path."""
    path = os.path.join(directory, "filler")
    with open(path, "wb", buffering=0) as f:
        try:
            while f.write(b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: full
            pass
    return path
