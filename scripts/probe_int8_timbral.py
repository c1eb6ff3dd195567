"""Probe: int8 static quantisation of the timbral graph (onnxruntime.quantization), speed and agreement.

Not used by the server. For each backbone of the default model it calibrates the
timbral graph on real music (the timbral inputs of demo tracks 1 and 3, one window
every 2 s), quantises its convolutions to int8 (QLinearConv, uint8 activations,
per-channel int8 weights; both convolutions, or only one of them) and reports, on
every window of the five demo tracks at hop 0.5 s:

* agreement of the top genre with the float model (all windows, and the windows of
  the three tracks not used for calibration) and the largest probability change;
* the timbral graph's time for a whole window (193 input frames) and a live
  window's new frames (70), and a whole isolated window through ``predict``,
  measured side by side (rounds alternate) with the float graphs.

Run: ``.venv/bin/python scripts/probe_int8_timbral.py [rounds]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def demo_windows(paths, hop: float) -> np.ndarray:
    from server.audio.decode import decode
    from server.audio.resample import resample
    from server.config import MODEL_SR, WINDOW_SAMPLES
    from server.stream.features import window_mel

    out = []
    for p in paths:
        y, sr = decode(str(p))
        y = resample(y, sr, MODEL_SR)
        for s in range(0, len(y) - WINDOW_SAMPLES + 1, int(hop * MODEL_SR)):
            out.append(window_mel(y[s:s + WINDOW_SAMPLES]))
    return np.stack(out).astype(np.float32)


class _Recorder:
    """Stands in for a timbral session and keeps the inputs it is given."""

    def __init__(self, session):
        self.session, self.inputs = session, []

    def run(self, names, feeds):
        self.inputs.append(feeds["x"].copy())
        return self.session.run(names, feeds)


def main(argv=None) -> int:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from server.model.fast import _session, default_threads, get_backbone, split_model
    from server.model.registry import load_model

    rounds = int((argv or sys.argv[1:] or ["20"])[0])
    tracks = sorted((ROOT / "media" / "demo").glob("*.ogg"))
    calib_tracks = [tracks[0], tracks[2]]
    calib = demo_windows(calib_tracks, 2.0)
    per_track = [len(demo_windows([t], 0.5)) for t in tracks]
    test = demo_windows(tracks, 0.5)
    held = np.concatenate([np.full(n, t not in calib_tracks) for t, n in zip(tracks, per_track)])
    model = load_model(None)
    threads = max(1, default_threads() // len(model.backbones))  # as backbone_features runs them
    bbs = {v: get_backbone(v, threads=threads) for v in model.backbones}
    print(f"model {model.name}, backbones {model.backbones}, {threads} thread(s) each; "
          f"{len(calib)} calibration windows, {len(test)} test windows ({int(held.sum())} held out)")

    recorders = {}
    for v, bb in bbs.items():
        recorders[v] = bb._timbral = _Recorder(bb._timbral)
    for i in range(len(calib)):
        model.predict(calib[i:i + 1])
    for v, bb in bbs.items():
        bb._timbral = recorders[v].session

    class Reader(CalibrationDataReader):
        def __init__(self, xs):
            self.it = iter([{"x": x} for x in xs])

        def get_next(self):
            return next(self.it, None)

    work = Path(tempfile.mkdtemp(prefix="gm-int8-"))
    sessions = {"float": {v: bb._timbral for v, bb in bbs.items()}}
    base = dict(quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                per_channel=True, op_types_to_quantize=["Conv"])
    for v in model.backbones:
        m = onnx.load(split_model(v)[1])
        inits = {i.name: i for i in m.graph.initializer}
        by_width = {}
        for k, node in enumerate(m.graph.node):
            node.name = node.name or f"n{k}"
            if node.op_type == "Conv":
                by_width.setdefault(int(inits[node.input[1]].dims[3]), []).append(node.name)
        named = work / f"{v}-timbral.onnx"
        onnx.save(m, str(named))
        widths = sorted(by_width)
        choices = {"int8 both convs": []}
        for w in widths:
            choices[f"int8 7x{w} only"] = [n for x in widths if x != w for n in by_width[x]]
        for name, exclude in choices.items():
            out = work / f"{v}-{name.replace(' ', '_')}.onnx"
            quantize_static(str(named), str(out), Reader(recorders[v].inputs), nodes_to_exclude=exclude, **base)
            sessions.setdefault(name, {})[v] = _session(str(out), threads)

    def use(name):
        for v, bb in bbs.items():
            bb._timbral = sessions[name][v]

    def predict_all(x):
        return np.concatenate([model.predict(x[i:i + 16])[0] for i in range(0, len(x), 16)])

    agreement = {}
    use("float")
    ref = predict_all(test)
    for name in sessions:
        use(name)
        probs = predict_all(test)
        same = probs.argmax(1) == ref.argmax(1)
        agreement[name] = (same.mean(), same[held].mean(), np.abs(probs - ref).max())
    first = bbs[model.backbones[0]]
    x193 = recorders[model.backbones[0]].inputs[0][:1]
    x70 = x193[:, :70]
    times = {n: {"193": [], "70": [], "window": []} for n in sessions}
    names = list(sessions)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            use(name)
            s = first._timbral
            t0 = time.perf_counter()
            s.run(None, {"x": x193})
            t1 = time.perf_counter()
            s.run(None, {"x": x70})
            t2 = time.perf_counter()
            model.predict(test[r % len(test)][None])
            t3 = time.perf_counter()
            for key, dt in (("193", t1 - t0), ("70", t2 - t1), ("window", t3 - t2)):
                times[name][key].append(dt)
    use("float")
    med = {n: {k: float(np.median(v)) for k, v in t.items()} for n, t in times.items()}
    f = med["float"]
    for name in names:
        a, ah, d = agreement[name]
        m = med[name]
        print(f"{name:16s} top genre agrees {100 * a:5.1f}% (held out {100 * ah:5.1f}%), max |dprob| {d:.3f}; "
              f"timbral 193 frames {1e3 * m['193']:5.1f} ms (x{f['193'] / m['193']:.2f}), "
              f"70 frames {1e3 * m['70']:5.1f} ms (x{f['70'] / m['70']:.2f}); "
              f"isolated window {1e3 * m['window']:5.1f} ms (x{f['window'] / m['window']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
