"""Make tests/golden/musicnn_golden.npz from the ORIGINAL musicnn TF1 graph.

Run from the repo root with any Python 3.11:

    python scripts/tools/make_golden.py              # builds build/golden-venv, runs inside it, writes the npz
    python scripts/tools/make_golden.py --venv-only  # only builds build/golden-venv (what ``make bench`` needs)

``make golden`` runs the first: it rewrites a tracked file, so commit the result only on
purpose (the tests hold the port to it within float32 error, whatever machine made it).

It creates a separate virtual environment with the original stack (numpy 1.26,
tensorflow-cpu 2.17 + tf-keras for ``tf.compat.v1.layers``, musicnn 0.1.0 --no-deps,
librosa), re-runs itself there with ``--inside``, builds a few deterministic log-mel
patches from synthetic audio, runs ``musicnn.models.define_model`` in a
``tf.compat.v1`` graph restored like ``musicnn.extractor`` does, and stores the
inputs and outputs for both variants. The golden venv is never needed by the tests.
"""

import argparse
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "build" / "golden-venv"
OUT = ROOT / "tests" / "golden" / "musicnn_golden.npz"
VARIANTS = ("MSD_musicnn", "MTT_musicnn")
PACKAGES = [
    "numpy==1.26.4",
    "tensorflow-cpu==2.17.1",
    "tf-keras==2.17.0",
    "librosa==0.10.2.post1",
]

SR, N_FFT, HOP, N_MELS, FRAMES = 16000, 512, 256, 96, 187


def build_venv() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run(["python3.11", "-m", "venv", str(VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run(pip + PACKAGES, check=True)
    subprocess.run(pip + ["--no-deps", "musicnn==0.1.0"], check=True)
    return py


# --- everything below runs inside the golden venv ---------------------------

def synth_audio():
    """Four deterministic 3.1-s clips: chord, drum-like bursts, chirp, white noise."""
    import numpy as np

    n = int(3.1 * SR)
    t = np.arange(n) / SR
    rng = np.random.default_rng(1234)

    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0, 523.25)) / 4

    drums = np.zeros(n)
    env = np.exp(-np.arange(int(0.15 * SR)) / (0.02 * SR))
    for k, start in enumerate(range(0, n - env.size, int(0.25 * SR))):
        burst = rng.standard_normal(env.size) * env
        if k % 4 == 0:  # "kick": low sine thump on the beat
            burst = burst * 0.3 + np.sin(2 * np.pi * 60 * t[: env.size]) * env
        drums[start:start + env.size] += burst
    drums /= np.abs(drums).max()

    f0, f1 = 100.0, 6000.0
    phase = 2 * np.pi * f0 * 3.1 / np.log(f1 / f0) * ((f1 / f0) ** (t / 3.1) - 1)
    chirp = 0.5 * np.sin(phase)

    noise = 0.3 * rng.standard_normal(n)
    return {"chord": chord, "drums": drums, "chirp": chirp, "noise": noise}


def log_mel_patch(y):
    import librosa
    import numpy as np

    mel = librosa.feature.melspectrogram(
        y=y.astype(np.float32), sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS
    ).T.astype(np.float32)
    return np.log10(np.float32(10000) * mel + np.float32(1))[:FRAMES]


def run_original(variant, x):
    import musicnn
    import numpy as np
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    labels = config.MSD_LABELS if "MSD" in variant else config.MTT_LABELS
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        ph = tf.compat.v1.placeholder(tf.float32, [None, FRAMES, N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        y, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(
            ph, is_training, variant, len(labels))
        tags = tf.nn.sigmoid(y)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        saver = tf.compat.v1.train.Saver()
        saver.restore(sess, os.path.dirname(musicnn.__file__) + "/" + variant + "/")
        out = sess.run([tags, penultimate, mean_pool, max_pool],
                       feed_dict={ph: x, is_training: False})
    return [np.asarray(o, dtype=np.float32) for o in out]


def inside(out: Path = OUT):
    import warnings

    warnings.filterwarnings("ignore")  # tf.compat.v1.layers deprecation noise
    import numpy as np
    import tensorflow as tf

    clips = synth_audio()
    names = list(clips)
    x = np.stack([log_mel_patch(clips[k]) for k in names]).astype(np.float32)
    assert x.shape == (len(names), FRAMES, N_MELS), x.shape
    data = {"inputs": x, "names": np.array(names),
            "versions": np.array([f"tensorflow {tf.__version__}", f"numpy {np.__version__}"])}
    for variant in VARIANTS:
        tags, emb, mean_pool, max_pool = run_original(variant, x)
        data[f"{variant}/tags"] = tags
        data[f"{variant}/embedding"] = emb
        data[f"{variant}/mean_pool"] = mean_pool
        data[f"{variant}/max_pool"] = max_pool
        print(variant, "tags", tags.shape, "embedding", emb.shape, "pool", mean_pool.shape)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **data)
    print("wrote", out, out.stat().st_size, "bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inside", action="store_true", help="(internal) run in the golden venv")
    ap.add_argument("--skip-install", action="store_true", help="reuse build/golden-venv as is")
    ap.add_argument("--venv-only", action="store_true",
                    help="build build/golden-venv and stop; write nothing under tests/ (for make bench)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"where to write the npz (default {OUT.relative_to(ROOT)})")
    args = ap.parse_args()
    if args.inside:
        inside(args.out)
        return
    if args.venv_only:
        build_venv()
        return
    py = VENV / "bin" / "python" if args.skip_install else build_venv()
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
               CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    subprocess.run([str(py), str(Path(__file__).resolve()), "--inside", "--out", str(args.out.resolve())],
                   check=True, env=env)


if __name__ == "__main__":
    main()
