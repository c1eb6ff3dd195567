"""Throughput of ``classify`` (decode, features, model) over a folder of 30-s files, in × real time."""

from __future__ import annotations

import time

from .common import cpu_seconds


def measure(model, files: list[str], hop: float = 1.0) -> dict:
    from server.classify import classify_file

    classify_file(files[0], model, hop_s=hop)  # warm-up: graphs built, caches filled
    audio = 0.0
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for path in files:
        audio += classify_file(path, model, hop_s=hop)["duration"]
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    return {"files": len(files), "audio_s": round(audio, 1), "wall_s": round(wall, 2),
            "x_realtime": round(audio / wall, 1), "cpu_s": round(cpu, 2), "hop_s": hop}
