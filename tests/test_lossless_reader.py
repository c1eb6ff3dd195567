"""A lossless pipeline (a file read as fast as the worker goes) never loses a window, however
slowly the worker reads one: the writer may overwrite audio only once the window is cut.

Found by ``scripts/qa/soak.py --race``: the extra load let the file's reader thread run between
the scheduler taking a window and the worker reading it, so windows went missing at hop 3 s.
"""

import math
import time

import soundfile as sf

from server.audio.file_source import FileSource
from server.config import MODEL_SR, WINDOW_SAMPLES
from server.stream.pipeline import Pipeline
from tests.support.audio import make_music

SR = 22050


def test_a_slow_window_is_not_overwritten_by_the_lossless_writer(tmp_path):
    seconds = 60.0
    path = tmp_path / "song.wav"
    sf.write(path, make_music(sr=SR, seconds=seconds), SR, subtype="PCM_16")
    hop = 3.0
    pipeline = Pipeline("slow", FileSource([str(path)], loop=False, realtime=False), hop)
    assert pipeline.lossless
    # The worker takes its time over each window (a busy machine, a slow model).
    pipeline.fault_hook = lambda stage, data: time.sleep(0.05) if stage == "window" else None
    pipeline.start()
    times = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            w = pipeline.next_window()
            if w is not None:
                times.append(w.t)
            elif pipeline.source.state in ("ended", "error", "stopped"):
                if pipeline.next_window() is None:
                    break
            else:
                time.sleep(0.005)
    finally:
        pipeline.stop()
    first = math.ceil(WINDOW_SAMPLES * SR / MODEL_SR)
    expected_at_least = int((seconds * SR - first) // round(hop * SR))
    assert pipeline.skipped == 0, (pipeline.skipped, len(times))
    assert len(times) >= expected_at_least and all(b > a for a, b in zip(times, times[1:])), times
