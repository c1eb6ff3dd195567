"""One M3U playlist per genre."""

from __future__ import annotations

import os
import re
from collections import defaultdict


def _file_name(genre: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", genre) + ".m3u"


def write_playlists(folder: str, results: list[dict]) -> list[str]:
    """``FOLDER/<genre>.m3u`` (extended M3U, absolute paths, UTF-8) for each genre found; returns the files."""
    os.makedirs(folder, exist_ok=True)
    by_genre: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        if r["genre"] is not None:
            by_genre[r["genre"]].append(r)
    written = []
    for genre, tracks in sorted(by_genre.items()):
        path = os.path.join(folder, _file_name(genre))
        with open(f"{path}.part", "w", encoding="utf-8") as f:
            f.write("#EXTM3U\n")
            for r in sorted(tracks, key=lambda r: r["path"]):
                title = os.path.splitext(os.path.basename(r["path"]))[0]
                f.write(f"#EXTINF:{int(round(r['duration']))},{title}\n{os.path.abspath(r['path'])}\n")
        os.replace(f"{path}.part", path)
        written.append(path)
    return written
