"""Write models/README.md (the model card) from a trained model's model.json and cached features.

    python scripts/eval_modelcard.py DATA_DIR [--model models/default]

Everything in the card is measured: cross-validated figures come from ``train --live-sim``
(stored in model.json); the level-invariance ablation re-runs grouped CV on the
embedding cache (raw vs per-window level-normalised features, with/without augmentation).
"""

import argparse
import json
import os
import sys


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from server.model.heads import LEVEL_REF_DB, head_members  # noqa: E402
from server.training.dataset import list_tracks  # noqa: E402
from server.training.embeddings import cache_path, collection_outputs, default_cache_dir  # noqa: E402
from server.training.dataset import file_hash  # noqa: E402
from server.training.head import cross_validate  # noqa: E402
from server.training.train import cv_metrics, label_index, spec_name  # noqa: E402

COND_NAMES = {"clean": "clean (file, 22.05 kHz → 16 kHz)", "gain-12": "level −12 dB", "gain-6": "level −6 dB",
              "gain+6": "level +6 dB (clipped at full scale)", "sr44100": "captured at 44.1 kHz, resampled",
              "sr48000": "captured at 48 kHz, resampled", "room": "speaker → room → microphone simulation",
              "live": "the live path itself (44.1-kHz capture fed a second at a time, hop 1 s)"}


def pct(x):
    return "–" if x is None else f"{100 * x:.1f} %"


KIND_TEXT = {
    "logreg": "multinomial logistic regression",
    "kernel": "logistic regression on Gaussian-kernel values against `centers` training windows, "
              "a Nyström approximation of a kernel machine",
    "svm": "an RBF support-vector machine, one-vs-one, with a Platt sigmoid per pair of genres coupled "
           "into genre probabilities (Wu, Lin & Weng 2004), exported as its support vectors and dual weights",
    "mlp": "a one-hidden-layer perceptron",
}


def head_text(head):
    members = head["members"] if head["kind"] == "ensemble" else [{"features": None, "spec": head}]
    kinds = "; ".join(f"`{k}`: {KIND_TEXT[k]}" for k in dict.fromkeys(m["spec"]["kind"] for m in members))
    if head["kind"] != "ensemble":
        return f"`{json.dumps(head)}` ({kinds})"
    names = "; ".join(f"`{spec_name(m['features'], m['spec'])}`" for m in head["members"])
    return f"the mean of {len(head['members'])} heads' probabilities — {names} ({kinds})"


def ablation(data_dir, meta, cache_dir):
    """Grouped-CV window accuracy at several levels: raw vs level-normalised, with/without augmentation."""
    tracks = list_tracks(data_dir)
    labels, tl = label_index(tracks)
    members = head_members(meta)
    cv = meta["cross_validation"]
    conds = ("clean", "gain-12", "gain-6", "gain+6")
    rows = []
    for norm, train_conds, title in [(False, ("clean",), "raw features, no augmentation"),
                                     (True, ("clean",), "level-normalised, no augmentation"),
                                     (True, tuple(cv["train_conditions"]), "level-normalised + augmentation (shipped)")]:
        need = tuple(dict.fromkeys(train_conds + conds))
        have = all(os.path.exists(cache_path(cache_dir, file_hash(t.path), c, cv["hop_s"], norm)) for t in tracks
                   for c in need)
        if not have:
            continue
        out = collection_outputs(tracks, need, hop_s=cv["hop_s"], level_norm=norm, cache_dir=cache_dir,
                                 progress=False)
        held = cross_validate(out, tl, len(labels), members, train_conds, conds, cv["folds"], cv["repeats"])
        m = cv_metrics(held, labels, len(tracks), None)
        rows.append((title, [m[c]["window_accuracy"] for c in conds], [m[c]["track_accuracy"] for c in conds]))
    return conds, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data_dir")
    ap.add_argument("--model", default="models/default")
    ap.add_argument("--out", default="models/README.md")
    ap.add_argument("--cache-dir", default=default_cache_dir())
    args = ap.parse_args()
    with open(os.path.join(args.model, "model.json")) as f:
        meta = json.load(f)
    cv = meta["cross_validation"]
    conds = cv["conditions"]
    clean = conds["clean"]
    labels = meta["labels"]
    zs = meta.get("zeroshot_baseline") or {}
    td = meta["training_data"]
    L = []
    w = L.append
    w(f"# Model card: `{meta['name']}` genre model\n")
    w(f"{meta['description']}. Created {meta['created']}. Files: `{meta['name']}/model.json` "
      f"(labels, features, threshold, all measured figures), `{meta['name']}/weights.npz` "
      f"(standardisation + head weights, numpy only), `{meta['name']}/confusion.png`.\n")
    w("## Data\n")
    w(f"- {td['n_tracks']} real 30-s clips of the GTZAN genre collection (Tzanetakis & Cook 2002), the "
      f"`gtzan-mini` subset: {', '.join(f'{k} {v}' for k, v in td['tracks_per_label'].items())}.")
    w("- The audio is not in this repository. Genres: " + ", ".join(labels) + ".")
    w(f"- Each clip is cut into 3-s windows every {cv['hop_s']:g} s (48128 samples at 16 kHz, each window's "
      "log-mel computed on its own: the same 187 frames the live path cuts from its frame stream, within 1e-4).\n")
    w("## Method\n")
    f = meta["features"]
    w(f"- Backbones: pretrained musicnn {' and '.join(f['backbones'])} (Pons & Serra 2019), frozen.")
    w(f"- Features: {', '.join(f['keys'])}; each window's mel power is first rescaled to a mean of "
      f"{LEVEL_REF_DB:g} dB (per-window level normalisation: input level no longer matters; live, each frame "
      "is normalised once, with the stream's gain held while windows stay within 2 dB of it).")
    w(f"- Head: {head_text(meta['head'])}; fitted with sklearn on standardised features, exported as plain weights "
      "(numpy only at run time).")
    w(f"- Training data per clip: {', '.join(cv['train_conditions'])} — `rand*` are random live-like chains: "
      "gain −12..+6 dB, time shift, white noise, EQ tilt, capture at 22.05/44.1/48 kHz and resampling, and "
      "half the time a speaker→microphone simulation (band-limit, soft saturation, synthetic room response, "
      "pink noise); `mic*` are the same chains always through the speaker→microphone simulation.")
    w(f"- Model selection: {cv['folds']}-fold cross-validation grouped by clip (no clip has windows on both "
      f"sides), repeated {cv['repeats']}×; score = {cv['selection_score']}. Candidates:\n")
    w("| candidate | CV score |\n|---|---|")
    for c in cv["candidates"]:
        w(f"| {c['name']} | {pct(c['score'])} |")
    n_aug = sum(c.startswith("rand") for c in cv["train_conditions"])
    n_mic = sum(c.startswith("mic") for c in cv["train_conditions"])
    mic = f" --mic {n_mic}" if n_mic else ""
    w(f"\nReproduce: `python run.py train DATA_DIR --out models/{meta['name']} --live-sim --augment {n_aug}{mic}` then "
      "`python scripts/eval_modelcard.py DATA_DIR` (cached embeddings make both take minutes).")
    w("\nThe figures below are the chosen candidate's held-out predictions from that same CV (selection among "
      f"{len(cv['candidates'])} candidates on it makes them slightly optimistic). Each held-out fold trains on "
      f"~{round(td['n_tracks'] * (cv['folds'] - 1) / cv['folds'])} clips; the shipped head is then fitted on "
      f"all {td['n_tracks']}.\n")
    w("## Cross-validated accuracy\n")
    w(f"- Window accuracy **{pct(clean['window_accuracy'])}**, track accuracy **{pct(clean['track_accuracy'])}** "
      f"(a track's genre = argmax of its mean window probabilities), macro F1 (tracks) "
      f"**{clean['macro_f1']:.3f}**, macro F1 (windows) {clean['window_macro_f1']:.3f}; "
      f"{clean['n_tracks']} track predictions, {clean['n_windows']} windows.")
    w("- Recall per genre (tracks / windows): " + ", ".join(
        f"{g} {clean['per_genre_recall'][g]:.2f}/{clean['per_genre_window_recall'][g]:.2f}" for g in labels) + ".")
    w(f"\n![confusion matrix]({meta['name']}/confusion.png)\n")
    w("## Uncertain decision\n")
    w(f"A window is *uncertain* when its top probability is below **{meta['uncertain_threshold']}**, the threshold "
      "that maximises (right − wrong) among the kept windows on the held-out predictions of all conditions below "
      "(below it the model is more often wrong than right). On clean held-out windows: "
      f"{pct(clean['uncertain_rate'])} uncertain (coverage {pct(1 - clean['uncertain_rate'])}), accuracy on the "
      f"rest {pct(clean['accuracy_when_certain'])}.\n")
    w("## Live conditions (held-out CV folds)\n")
    w("| condition | window acc. | track acc. | macro F1 | uncertain |\n|---|---|---|---|---|")
    for c, m in conds.items():
        w(f"| {COND_NAMES.get(c, c)} | {pct(m['window_accuracy'])} | {pct(m['track_accuracy'])} | "
          f"{m['macro_f1']:.3f} | {pct(m['uncertain_rate'])} |")
    w("\nEvery row but the last computes each window's mel on its own, every 3 s; the last runs each clip through "
      "the live path itself — ring buffer, one frame stream per source, hop 1 s, each frame level-normalised once "
      "with the stream's gain held within 2 dB (so consecutive windows share their frames). Reproduce on new clips "
      "with `python run.py evaluate DATA_DIR --live-sim`.\n")
    if "room" in conds:
        clean_r, room_r = clean["per_genre_window_recall"], conds["room"]["per_genre_window_recall"]
        drops = sorted(((clean_r[g] - room_r[g], g) for g in labels if g in room_r), reverse=True)
        worst = [f"{g} {clean_r[g]:.2f} → {room_r[g]:.2f}" for d, g in drops if d > 0.1]
        if worst:
            w("Under the speaker → microphone simulation the loss is concentrated in a few genres (window recall, "
              f"clean → room): {', '.join(worst)}; the others change by at most "
              f"{max(abs(d) for d, g in drops if d <= 0.1):.2f}.\n")
    conds_a, rows = ablation(args.data_dir, meta, args.cache_dir)
    if rows:
        w("### Level invariance (grouped CV, same head)\n")
        w("| features | " + " | ".join(COND_NAMES[c].split(" (")[0] for c in conds_a) + " |")
        w("|---|" + "---|" * len(conds_a))
        for title, accs, taccs in rows:
            w(f"| {title} | " + " | ".join(f"{pct(a)} / {pct(t)}" for a, t in zip(accs, taccs)) + " |")
        w("\n(window / track accuracy)\n")
    if zs:
        w("## Comparison with zero-shot tags\n")
        w("The untrained alternative: each genre scores its highest matching MSD/MTT tag (`server/model/zeroshot.py`"
          "), normalised; neither vocabulary has reggae (always wrong) nor disco (`dance`/`funk` stand in). "
          "Same clips, no fitting:\n")
        w("| condition | zero-shot window | zero-shot track | trained window (CV) | trained track (CV) |")
        w("|---|---|---|---|---|")
        for c, m in zs.items():
            w(f"| {COND_NAMES.get(c, c)} | {pct(m['window_accuracy'])} | {pct(m['track_accuracy'])} | "
              f"{pct(conds[c]['window_accuracy'])} | {pct(conds[c]['track_accuracy'])} |")
        w("")
    w("## Targets\n")
    w("The project asks for ≥ 96 % track and ≥ 90 % window accuracy on unseen GTZAN clips, and at most 3 points "
      "lost under live conditions. Measured here by grouped CV (each fold trains on ~4 clips per genre):")
    w(f"- track {pct(clean['track_accuracy'])}, window {pct(clean['window_accuracy'])}: "
      + ("met" if clean["track_accuracy"] >= 0.96 and clean["window_accuracy"] >= 0.90 else
         "**not demonstrated** by this CV; the shipped head trains on all clips, so figures on unseen clips from "
         "the same artists can be higher, and on unseen artists lower") + ".")
    for c, m in conds.items():
        if c == "clean":
            continue
        d = 100 * (clean["window_accuracy"] - m["window_accuracy"])
        dt = 100 * (clean["track_accuracy"] - m["track_accuracy"])
        ok = d <= 3 and dt <= 3
        w(f"- {COND_NAMES.get(c, c)}: {0.0 - d:+.1f} window / {0.0 - dt:+.1f} track points: "
          + ("within 3 points" if ok else "**more than 3 points lost**") + ".")
    w("")
    w("## Known limits\n")
    w(f"- Small data: {td['n_tracks']} clips, about five per genre; one clip is ~2 points of track accuracy, so "
      "the CV figures have wide error bars (±5–10 points).")
    w("- GTZAN has known faults (repeated clips, mislabelling, distortion; Sturm 2013) and repeats artists within "
      "a genre, so random splits are optimistic: expect lower accuracy on artists it has never heard. A 5-billion-"
      "parameter Jukebox probe reaches 79.7 % on the fault-filtered artist-conditional split.")
    w("- Reggae is absent from both backbones' tag vocabularies; the head learns it from a handful of clips.")
    w("- Ten GTZAN genres only: other music is forced into one of them (the uncertain flag helps, it is no "
      "open-set detector). Train your own: `python run.py train DATA_DIR --out models/NAME --live-sim`.")
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(L) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
