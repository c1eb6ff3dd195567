"""Compare genre heads by grouped cross-validation on the cached musicnn outputs.

    python scripts/train_experiments.py DATA_DIR [--only NAME ...] [--json OUT] [--repeats 2]

Every candidate (features × classifier × training conditions; ``A|B`` with ``X|Y`` is the
ensemble of (A, X) and (B, Y), the mean of their probabilities) is scored with the same
5-fold splits grouped by track (``head.grouped_folds``, seeds 0..repeats-1, as ``train``
uses): no track has windows on both sides. Evaluation is always the held-out tracks'
3-s windows at hop 3 s, as the live path cuts them, under the clean condition and the
live conditions of ``augment.EVAL_CONDITIONS``. Reported per candidate: window and track
accuracy, mean ± std over the fold runs, for clean and the speaker→mic ``room``
simulation, plus ``train``'s selection score (mean window accuracy over all conditions).
Comparing many candidates on the same folds makes the best one optimistic: the count
is printed with the table.
"""

import argparse
import fnmatch
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from server.training import augment  # noqa: E402
from server.training.dataset import list_tracks  # noqa: E402
from server.training.embeddings import collection_outputs  # noqa: E402
from server.training.head import grouped_folds  # noqa: E402
from server.training.train import label_index  # noqa: E402

EMB = ["MSD_musicnn/embedding", "MTT_musicnn/embedding"]


# --- features: backbone outputs of one track → (B, d) -------------------------------------------

def _cat(o, keys):
    return np.concatenate([o[k] for k in keys], axis=1).astype(np.float64)


def _l2(x):
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)


def _ssqrt(x):
    return np.sign(x) * np.sqrt(np.abs(x))


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


POOLS = ["MSD_musicnn/mean_pool", "MTT_musicnn/mean_pool", "MSD_musicnn/max_pool", "MTT_musicnn/max_pool"]

FEATURES = {
    "emb": lambda o: _cat(o, EMB),
    "emb+pools": lambda o: _cat(o, EMB + POOLS),
    "emb-l2": lambda o: np.concatenate([_l2(o[k].astype(np.float64)) for k in EMB], axis=1),
    "emb+logit-tags": lambda o: np.concatenate([_cat(o, EMB), _logit(_cat(o, ["MSD_musicnn/tags",
                                                                             "MTT_musicnn/tags"]))], axis=1),
    "emb+sqrt-meanpools": lambda o: np.concatenate([_cat(o, EMB), _ssqrt(_cat(o, ["MSD_musicnn/mean_pool",
                                                                                 "MTT_musicnn/mean_pool"]))], axis=1),
    "emb+sqrt-pools": lambda o: np.concatenate([_cat(o, EMB), _ssqrt(_cat(o, POOLS))], axis=1),
}


# --- classifiers: factories of sklearn estimators on standardised features -------------------

class MeanProba:
    """Mean of the members' probabilities (or of their log-probabilities: ``geometric``)."""

    def __init__(self, members, geometric=False):
        self.members, self.geometric = members, geometric

    def fit(self, X, y):
        for m in self.members:
            m.fit(X, y)
        return self

    def predict_proba(self, X):
        ps = [m.predict_proba(X) for m in self.members]
        if not self.geometric:
            return np.mean(ps, axis=0)
        z = np.mean([np.log(np.maximum(p, 1e-12)) for p in ps], axis=0)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def _pipe(*steps):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), *steps)


def lr(C):
    from sklearn.linear_model import LogisticRegression
    return lambda: _pipe(LogisticRegression(C=C, max_iter=500))


def lda(shrinkage="auto"):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    return lambda: _pipe(LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage))


def svm(kernel, C, gamma="scale"):
    from sklearn.svm import SVC
    return lambda: _pipe(SVC(kernel=kernel, C=C, gamma=gamma, probability=True, random_state=0))


def pca_lr(n, C):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    return lambda: _pipe(PCA(n_components=n, whiten=True, random_state=0), LogisticRegression(C=C, max_iter=500))


def kernel(C, centers=1000):
    """``train``'s kernel head: logistic regression on Nyström RBF features (γ = 1/d, sklearn's default)."""
    from sklearn.kernel_approximation import Nystroem
    from sklearn.linear_model import LogisticRegression
    return lambda: _pipe(Nystroem(n_components=centers, random_state=0), LogisticRegression(C=C, max_iter=500))


def knn(k):
    from sklearn.neighbors import KNeighborsClassifier
    return lambda: _pipe(KNeighborsClassifier(n_neighbors=k, metric="cosine", weights="distance"))


def ensemble(*factories, geometric=False):
    return lambda: MeanProba([f() for f in factories], geometric)


CLASSIFIERS = {
    "lr(C=0.01)": lr(0.01),  # session 1's shipped head
    "lr(C=0.001)": lr(0.001),
    "lr(C=0.003)": lr(0.003),
    "lr(C=0.1)": lr(0.1),
    "lr(C=1)": lr(1.0),
    "lda(shrink=auto)": lda("auto"),
    "lda(shrink=0.5)": lda(0.5),
    "svm-linear(C=0.01)": svm("linear", 0.01),
    "svm-rbf(C=1)": svm("rbf", 1.0),
    "svm-rbf(C=10)": svm("rbf", 10.0),
    "pca64w+lr(C=0.01)": pca_lr(64, 0.01),
    "pca32w+lr(C=0.1)": pca_lr(32, 0.1),
    "knn-cos(k=15)": knn(15),
    "kernel(C=1)": kernel(1.0),
    "ens(lr,lda)": ensemble(lr(0.01), lda("auto")),
    "ens(lr,lda,svm-rbf)": ensemble(lr(0.01), lda("auto"), svm("rbf", 1.0)),
    "ens-geo(lr,lda)": ensemble(lr(0.01), lda("auto"), geometric=True),
}

# Training sets: (condition, hop) pairs of the training tracks; hop 1.5 = overlapping windows.
TRAIN_SETS = {
    "aug4": [("clean", 3.0)] + [(f"rand{k}", 3.0) for k in range(4)],  # session 1's training set
    "clean": [("clean", 3.0)],
    "aug8": [("clean", 3.0)] + [(f"rand{k}", 3.0) for k in range(8)],
    "aug4+mic4": [("clean", 3.0)] + [(f"rand{k}", 3.0) for k in range(4)] + [(f"mic{k}", 3.0) for k in range(4)],
    "aug4+hop1.5": [("clean", 1.5), ("rand0", 1.5), ("rand1", 1.5), ("rand2", 3.0), ("rand3", 3.0)],
}

# The candidates compared: stage 1 classifiers on the shipped features and training set,
# stage 2 features, stage 3 training sets (the later stages use a few stage-1 winners).
PLAN = ([("emb", c, "aug4") for c in CLASSIFIERS]
        + [(f, c, "aug4") for f in FEATURES if f != "emb" for c in ("lr(C=0.01)", "lda(shrink=auto)")]
        + [("emb", c, t) for t in TRAIN_SETS if t != "aug4" for c in ("lr(C=0.01)", "lda(shrink=auto)")]
        + [("emb-l2", "lr(C=0.01)", t) for t in TRAIN_SETS if t != "aug4"]
        # Session 3: ensembles of a head on embeddings + pools and one on embeddings ("A|B": mean of both).
        + [("emb+pools", "lr(C=0.1)", "aug4+mic4"), ("emb", "kernel(C=1)", "aug4+mic4")]
        + [("emb+pools|emb", f"lr(C=0.1)|{c}", "aug4+mic4") for c in ("lr(C=0.01)", "kernel(C=1)", "svm-rbf(C=1)")])


BASELINE = ("emb", "lr(C=0.01)", "aug4")  # session 1's head, first row: Δ columns are relative to it


def load(tracks, plan, level_norm=True):
    """``{(condition, hop): [outputs of track i]}`` for every pair the plan needs (cached)."""
    need = {(c, 3.0) for c in augment.EVAL_CONDITIONS}
    for _, _, t in plan:
        need |= set(TRAIN_SETS[t])
    out = {}
    for c, hop in sorted(need):
        out[(c, hop)] = collection_outputs(tracks, (c,), hop_s=hop, level_norm=level_norm, progress=False)[c]
    return out


def run_candidate(outputs, track_labels, feature, clf, train_set, n_splits=5, repeats=2):
    """Held-out window/track accuracy per fold run and condition."""
    from sklearn.exceptions import ConvergenceWarning

    # "A|B" with "X|Y": an ensemble, the mean of the probabilities of (A, X) and (B, Y).
    members = list(zip(feature.split("|"), clf.split("|")))
    X = [{key: [FEATURES[f](o) for o in outs] for key, outs in outputs.items()} for f, _ in members]
    per = {c: {"win": [], "track": []} for c in augment.EVAL_CONDITIONS}
    pooled = {c: [0, 0] for c in augment.EVAL_CONDITIONS}
    for r in range(repeats):
        for train_idx, test_idx in grouped_folds(track_labels, n_splits, r):
            models = []
            for Xm, (_, c) in zip(X, members):
                Xtr = np.concatenate([Xm[key][i] for key in TRAIN_SETS[train_set] for i in train_idx])
                ytr = np.concatenate([np.full(len(Xm[key][i]), track_labels[i])
                                      for key in TRAIN_SETS[train_set] for i in train_idx])
                models.append(CLASSIFIERS[c]())
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    models[-1].fit(Xtr, ytr)
            for c in augment.EVAL_CONDITIONS:
                wins, tr_ok = [], []
                for i in test_idx:
                    p = np.mean([m.predict_proba(Xm[(c, 3.0)][i]) for m, Xm in zip(models, X)], axis=0)
                    wins.append(p.argmax(1) == track_labels[i])
                    tr_ok.append(p.mean(0).argmax() == track_labels[i])
                w = np.concatenate(wins)
                per[c]["win"].append(w.mean())
                per[c]["track"].append(np.mean(tr_ok))
                pooled[c][0] += w.sum()
                pooled[c][1] += len(w)
    res = {c: {"win_mean": float(np.mean(v["win"])), "win_std": float(np.std(v["win"])),
               "track_mean": float(np.mean(v["track"])), "track_std": float(np.std(v["track"])),
               "win_pooled": pooled[c][0] / pooled[c][1]} for c, v in per.items()}
    res["score"] = float(np.mean([res[c]["win_pooled"] for c in augment.EVAL_CONDITIONS]))
    res["folds"] = {c: per[c]["win"] for c in ("clean", "room")}
    return res


def fmt(r):
    return f"{100 * r['win_mean']:.1f} ± {100 * r['win_std']:.1f} | {100 * r['track_mean']:.1f} ± {100 * r['track_std']:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data_dir")
    ap.add_argument("--only", nargs="*", help="candidate names (features/classifier/training set) to run; "
                                              "shell-style patterns, e.g. 'emb/*/aug4'")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", help="write all results here")
    args = ap.parse_args()
    tracks = list_tracks(args.data_dir)
    labels, track_labels = label_index(tracks)
    wanted = [p for p in PLAN if not args.only or any(fnmatch.fnmatchcase("/".join(p), pat) for pat in args.only)]
    plan = [BASELINE] + [p for p in wanted if p != BASELINE]
    outputs = load(tracks, plan)
    results = []
    print("| candidate | clean window | clean track | speaker-mic window | speaker-mic track | score "
          "| Δ clean window | Δ speaker-mic window | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = None
    for feature, clf, train_set in plan:
        t0 = time.time()
        r = run_candidate(outputs, track_labels, feature, clf, train_set, repeats=args.repeats)
        name = f"{feature}/{clf}/{train_set}"
        results.append({"name": name, **r})
        cl, rm = r["clean"], r["room"]
        # Paired differences with the first candidate (same folds): far less noisy than the fold spread.
        base = base or r["folds"]
        d = {c: 100 * (np.array(r["folds"][c]) - base[c]) for c in ("clean", "room")}
        print(f"| {name} | {100 * cl['win_mean']:.1f} ± {100 * cl['win_std']:.1f} | "
              f"{100 * cl['track_mean']:.1f} ± {100 * cl['track_std']:.1f} | "
              f"{100 * rm['win_mean']:.1f} ± {100 * rm['win_std']:.1f} | "
              f"{100 * rm['track_mean']:.1f} ± {100 * rm['track_std']:.1f} | {100 * r['score']:.1f} | "
              f"{d['clean'].mean():+.1f} ± {d['clean'].std():.1f} | {d['room'].mean():+.1f} ± {d['room'].std():.1f} | "
              f"{time.time() - t0:.0f} |", flush=True)
    print(f"\n{len(results)} candidates on the same {5}-fold x{args.repeats} grouped splits "
          f"(mean ± std over the {5 * args.repeats} fold runs; Δ: paired difference with the first row, "
          f"points); the best of them is optimistic.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
