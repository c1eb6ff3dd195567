"""Per-window cost, ours vs the original musicnn extractor, measured side by side.

Ours, isolated windows: ``window_mel`` (features) + ``GenreModel.predict`` (level
normalisation, every backbone the model uses, the head). Ours, live: the live
path itself — a ``Pipeline`` fed 44.1-kHz audio one second at a time (ring
buffer, resampling and framing of the new second) and ``predict`` with the
window's stream key, so frames shared with the previous window are not
recomputed; each run's start-up windows and first full window (nothing to share
yet) are left out.
The original: librosa's mel + log10 and ``session.run`` of the same networks in
the golden venv (``bench/original.py``), fed the very patches our backbones
see. Rounds alternate between the two so that both sides share the machine's load.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

import numpy as np

from .common import ROOT, BenchError, music_clips, ratio, stats_ms

GOLDEN_PY = ROOT / "build" / "golden-venv" / "bin" / "python"


def windows_16k(n: int) -> np.ndarray:
    """``n`` windows of 16-kHz music, WINDOW_SAMPLES each."""
    from server.config import MODEL_SR, WINDOW_SAMPLES

    clips = music_clips(1, max(4.0, n * 1.0 + 4.0), sr=MODEL_SR)[0]
    step = MODEL_SR  # one window per second, like a hop of 1 s
    return np.stack([clips[i * step:i * step + WINDOW_SAMPLES] for i in range(n)]).astype(np.float32)


class Original:
    """The golden-venv subprocess serving timing commands (see ``bench/original.py``)."""

    def __init__(self, python=GOLDEN_PY, timeout: float = 300.0):
        if not os.path.exists(python):
            raise BenchError(f"the original musicnn stack is missing ({python}); build it with "
                             "`make bench` or `python scripts/tools/make_golden.py --venv-only`")
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                   PYTHONPATH="")
        self.proc = subprocess.Popen([str(python), str(ROOT / "bench" / "original.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.info = self._read(timeout)

    def _read(self, timeout: float | None = None) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError(f"the original extractor exited (code {self.proc.poll()})")
        return json.loads(line)

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise BenchError(answer["error"])
        return answer

    def close(self) -> None:
        try:
            self.ask(cmd="quit")
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# Seconds of audio a live run needs beyond its measured windows: the stream's start-up windows
# (classified before a full window of audio, the rest filled with its sound) and one cold window.
LIVE_WARMUP_S = 8.0


def live_windows(model, audio: np.ndarray, sr: int, n: int, name: str) -> dict[str, list[float]]:
    """Seconds per window for ``n`` consecutive live windows at hop 1 s, in the steady state: the
    stream's start-up windows (they start before its audio does) and the first full window (nothing
    to share yet) are left out."""
    from server.model.fast import frame_counts
    from server.stream.pipeline import live_windows as windows_of

    times = {"total": [], "features": [], "model": []}
    stream = windows_of(audio, sr, 1.0, name)
    counts0 = None
    while len(times["total"]) < n:
        t0 = time.perf_counter()
        try:
            w = next(stream)  # pushes the next second into the pipeline and frames it
        except StopIteration:
            raise BenchError(f"live audio too short for {n} steady-state windows") from None
        t1 = time.perf_counter()
        model.predict(w.mel[None], streams=[w.stream])
        t2 = time.perf_counter()
        if counts0 is None:
            if w.stream is None or w.stream[1] >= 0:  # the cold window: count what the steady state computes
                counts0 = frame_counts()
            continue
        times["features"].append(t1 - t0)
        times["model"].append(t2 - t1)
        times["total"].append(t2 - t0)
    counts1 = frame_counts()
    times["frames_computed"] = [counts1[0] - counts0[0]]
    times["frames_reused"] = [counts1[1] - counts0[1]]
    return times


def measure(model, repeats: int = 20, batches=(1, 16), rounds: int = 2, original: bool = True) -> dict:
    """Per-window cost (ms) at each batch size for both sides, and their agreement."""
    from server.model.genre_model import backbone_features
    from server.model.level import normalize_level
    from server.stream.features import window_mel

    n = max(batches)
    audio = windows_16k(n)
    mel = np.stack([window_mel(y) for y in audio])
    norm = normalize_level(mel)  # what the backbones of a level-normalised model see
    model.predict(mel[:1])  # warm up (converts/loads the graphs on first use)
    backbones = list(getattr(model, "backbones", []))

    tmp = tempfile.mkdtemp(prefix="gm-bench-")
    np.save(os.path.join(tmp, "audio.npy"), audio)
    np.save(os.path.join(tmp, "mel.npy"), norm)
    orig = Original() if original else None
    ours = {b: {"total": [], "features": [], "model": []} for b in batches}
    theirs = {b: {"total": [], "features": [], "model": []} for b in batches}
    live = {"total": [], "features": [], "model": [], "frames_computed": [], "frames_reused": []}
    per_round = max(1, repeats // rounds)
    live_audio = music_clips(1, per_round + LIVE_WARMUP_S, sr=44100)[0]
    try:
        for r in range(rounds):
            for key, values in live_windows(model, live_audio, 44100, per_round, f"bench-live-{r}").items():
                live[key] += values
            for b in batches:
                # A big batch gives b windows per sample: fewer samples keep the full run short.
                n_rep = per_round if b == 1 else max(3, per_round // 2)
                for _ in range(n_rep):
                    t0 = time.perf_counter()
                    x = np.stack([window_mel(y) for y in audio[:b]])
                    t1 = time.perf_counter()
                    model.predict(x)
                    t2 = time.perf_counter()
                    ours[b]["features"].append((t1 - t0) / b)
                    ours[b]["model"].append((t2 - t1) / b)
                    ours[b]["total"].append((t2 - t0) / b)
                if orig is not None:
                    feats = orig.ask(cmd="features", audio=os.path.join(tmp, "audio.npy"), repeats=n_rep)["times"]
                    runs = orig.ask(cmd="run", mel=os.path.join(tmp, "mel.npy"), batch=b, repeats=n_rep)["times"]
                    theirs[b]["features"] += feats
                    theirs[b]["model"] += [r / b for r in runs]
                    theirs[b]["total"] += [f + r / b for f, r in zip(feats, runs)]
        agreement = None
        if orig is not None:
            out = os.path.join(tmp, "orig_out.npz")
            orig.ask(cmd="outputs", mel=os.path.join(tmp, "mel.npy"), out=out)
            agreement = compare_outputs(norm, np.load(out), backbones or ["MSD_musicnn", "MTT_musicnn"])
    finally:
        if orig is not None:
            orig.close()

    # Our components at batch 1, for the report: the backbones alone and the rest.
    bb = []
    for _ in range(per_round):
        t0 = time.perf_counter()
        backbone_features(norm[:1], backbones, level_norm=False)
        bb.append(time.perf_counter() - t0)

    result = {"backend": os.environ.get("GENRE_MONITOR_BACKEND") or "default",
              "backbones": backbones, "ours": {}, "original": {}, "ratio": {},
              "ours_backbones_b1": stats_ms(bb)}
    for b in batches:
        result["ours"][f"b{b}"] = {k: stats_ms(v) for k, v in ours[b].items()}
        if orig is not None:
            result["original"][f"b{b}"] = {k: stats_ms(v) for k, v in theirs[b].items()}
            result["ratio"][f"b{b}"] = {
                "total": ratio(result["original"][f"b{b}"]["total"]["median_ms"],
                               result["ours"][f"b{b}"]["total"]["median_ms"]),
                "model": ratio(result["original"][f"b{b}"]["model"]["median_ms"],
                               result["ours"][f"b{b}"]["model"]["median_ms"]),
            }
    frames = {k: int(sum(live.pop(k))) for k in ("frames_computed", "frames_reused")}
    result["ours"]["live"] = {k: stats_ms(v) for k, v in live.items()}
    result["live_frames"] = {**frames, "computed_fraction": round(
        frames["frames_computed"] / max(1, frames["frames_computed"] + frames["frames_reused"]), 3)}
    if orig is not None and "b1" in result["original"]:
        result["ratio"]["live"] = {
            k: ratio(result["original"]["b1"][k]["median_ms"], result["ours"]["live"][k]["median_ms"])
            for k in ("total", "model")}
    if orig is not None:
        result["original"]["versions"] = orig.info
        result["agreement"] = agreement
    return result


def compare_outputs(norm: np.ndarray, original: dict, backbones: list[str]) -> dict:
    """Largest absolute differences between our backbones' outputs and the original's, and the
    embedding's scale (largest |value| of the original's), which float32 errors are relative to."""
    from server.model.genre_model import backbone_features

    ours = backbone_features(norm, backbones, level_norm=False)
    out = {}
    for key in ("tags", "embedding"):
        out[f"max_abs_diff_{key}"] = float(max(np.abs(ours[f"{b}/{key}"] - original[f"{b}/{key}"]).max()
                                               for b in backbones))
    out["scale_embedding"] = float(max(np.abs(original[f"{b}/embedding"]).max() for b in backbones))
    return out
