"""The original musicnn extractor's networks, timed in the golden venv (numpy 1.26, TF 2.17, tf-keras).

Run by ``bench.window_cost`` as ``<golden python> bench/original.py`` with
``TF_USE_LEGACY_KERAS=1``; it loads both networks the way ``musicnn.extractor``
does (a ``tf.compat.v1`` graph and session per variant, restored from the shipped
checkpoint), then serves commands on stdin, one JSON object per line:

    {"cmd": "features", "audio": PATH, "repeats": N}   time librosa's mel + log10 per window
    {"cmd": "run", "mel": PATH, "batch": B, "repeats": N}  time session.run of both networks
    {"cmd": "outputs", "mel": PATH, "out": PATH}      write tags/embeddings to an npz
    {"cmd": "quit"}

Each answer is one JSON line. Only the standard library, numpy, TF and librosa of
that venv are used: this file must not import the app.
"""

import json
import os
import sys
import time

VARIANTS = ("MSD_musicnn", "MTT_musicnn")
SR, N_FFT, HOP, N_MELS, FRAMES = 16000, 512, 256, 96, 187


class Network:
    """One variant in its own graph and session, as ``musicnn.extractor`` builds it."""

    def __init__(self, variant):
        import musicnn
        import tensorflow as tf
        from musicnn import configuration as config
        from musicnn import models

        labels = config.MSD_LABELS if "MSD" in variant else config.MTT_LABELS
        self.graph = tf.Graph()
        with self.graph.as_default():
            with tf.name_scope("model"):
                self.x = tf.compat.v1.placeholder(tf.float32, [None, FRAMES, N_MELS])
                self.is_training = tf.compat.v1.placeholder(tf.bool)
                y, _, _, _, _, _, _, _, penultimate = models.define_model(
                    self.x, self.is_training, variant, len(labels))
                self.tags = tf.nn.sigmoid(y)
                self.embedding = penultimate
            self.sess = tf.compat.v1.Session(graph=self.graph)
            self.sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().restore(self.sess, os.path.dirname(musicnn.__file__) + "/" + variant + "/")

    def __call__(self, x):
        return self.sess.run([self.tags, self.embedding], feed_dict={self.x: x, self.is_training: False})


def mel_window(y):
    """The extractor's features for one 3-s window (librosa mel, musicnn's log10 scaling)."""
    import librosa
    import numpy as np

    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).T
    return np.log10(10000 * mel + 1)[:FRAMES].astype(np.float32)


def main():
    import warnings

    warnings.filterwarnings("ignore")
    import numpy as np
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    nets = {v: Network(v) for v in VARIANTS}
    zero = np.zeros((1, FRAMES, N_MELS), np.float32)
    for net in nets.values():
        net(zero)  # first run builds the kernels
    print(json.dumps({"ready": True, "tensorflow": tf.__version__, "numpy": np.__version__}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        if cmd["cmd"] == "features":
            audio = np.load(cmd["audio"]).astype(np.float32)
            mel_window(audio[0])  # librosa builds and caches its filters on first use
            times = []
            for i in range(cmd["repeats"]):
                t0 = time.perf_counter()
                mel_window(audio[i % len(audio)])
                times.append(time.perf_counter() - t0)
            answer = {"times": times}
        elif cmd["cmd"] == "run":
            mel = np.load(cmd["mel"]).astype(np.float32)
            b = cmd["batch"]
            x = np.stack([mel[i % len(mel)] for i in range(b)])
            times = []
            for _ in range(cmd["repeats"]):
                t0 = time.perf_counter()
                for net in nets.values():
                    net(x)
                times.append(time.perf_counter() - t0)
            answer = {"times": times}
        elif cmd["cmd"] == "outputs":
            mel = np.load(cmd["mel"]).astype(np.float32)
            out = {}
            for v, net in nets.items():
                out[f"{v}/tags"], out[f"{v}/embedding"] = net(mel)
            np.savez(cmd["out"], **out)
            answer = {"written": cmd["out"]}
        else:
            answer = {"error": f"unknown command {cmd['cmd']!r}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
