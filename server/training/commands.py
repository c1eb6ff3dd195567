"""``train`` and ``evaluate`` subcommands (wired into ``server/cli.py`` via ``register``)."""

from __future__ import annotations

import json
import os
import sys

from ..cli_errors import fail
from ..config import DEFAULT_HOP_SECONDS
from ..model.fast import PRECISIONS
from ..model.registry import MODELS_DIR


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a genre model on a folder-per-genre collection",
                              description="Train a genre head on DATA_DIR/<genre>/<audio files> (one or more "
                                          "collections). Models are chosen by cross-validation that keeps "
                                          "an artist's tracks on one side of every split.")
    p.add_argument("data_dir", nargs="+",
                   help="folder(s) holding one folder of audio files per genre; NAME=FOLDER names the "
                        "collection a folder belongs to (folders of one collection share a NAME; default: "
                        "each folder is its own). With several collections, training balances them within "
                        "each genre and also validates leave-one-collection-out")
    p.add_argument("--out", help="model directory to write (default: models/<name of the first DATA_DIR>)")
    p.add_argument("--split", action="append", metavar="FILE",
                   help="use only the tracks listed in FILE (genre/file lines); repeatable. Artist-disjoint "
                        "lists (e.g. GTZAN's fault-filtered train/valid/test) also give the validation groups")
    p.add_argument("--groups", action="append", metavar="FILE",
                   help="validation groups: '<track>,<group>' lines (group = artist or album); repeatable "
                        "(e.g. one file per collection). Each track's group comes from these files, else the "
                        "artist in its tags, else the --split lists' id blocks, else the track itself")
    p.add_argument("--arch", choices=("head", "small-cnn"), default="head",
                   help="head: small head on the pretrained musicnn backbones (default); "
                        "small-cnn: CNN from scratch (needs a large collection)")
    p.add_argument("--augment", type=int, default=2, metavar="N",
                   help="augmented copies of each track (gain, shift, noise, EQ, speaker→mic, resampling)")
    p.add_argument("--mic", type=int, default=0, metavar="N",
                   help="extra augmented copies that always go through a random speaker→mic simulation")
    p.add_argument("--live-sim", action="store_true",
                   help="also cross-validate under live conditions (levels, 44.1/48 kHz, speaker→mic)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds, grouped by track")
    p.add_argument("--repeats", type=int, default=2, help="cross-validation repeats")
    p.add_argument("--hop", type=float, default=3.0, help="seconds between training windows")
    p.add_argument("--quick", action="store_true",
                   help="skip model selection: one logistic-regression head on both embeddings")
    p.add_argument("--epochs", type=int, default=50, help="small-cnn: maximum epochs (early stopping)")
    p.add_argument("--cache-dir", help="embedding cache (default ~/.cache/genre-monitor/embeddings)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("evaluate", help="score a genre model on a folder-per-genre collection",
                              description="Evaluate a model on DATA_DIR/<genre>/<audio files>; fits nothing.")
    e.add_argument("data_dir")
    e.add_argument("--model", help="installed model name or model directory (default: default, else zeroshot)")
    e.add_argument("--split", action="append", metavar="FILE", help="only the tracks listed in FILE")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--live-sim", action="store_true",
                   help="also score under live conditions: −12/−6/+6 dB, 44.1/48 kHz capture, speaker→mic, "
                        "and through the live path itself (hop 1 s)")
    e.add_argument("--hop", type=float, default=DEFAULT_HOP_SECONDS,
                   help="seconds between evaluated windows (default: the live monitor's hop)")
    e.add_argument("--precision", choices=PRECISIONS, default="float",
                   help="the fast backend's timbral front-end: float (default) or the int8 the server may pick")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=run_evaluate)



def run_train(args) -> int:
    from ..audio.decode import DecodeError
    from .dataset import DatasetError

    out = args.out or os.path.join(MODELS_DIR, os.path.basename(os.path.normpath(args.data_dir[0])))
    log = (lambda *a: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    try:
        if args.arch == "small-cnn":
            if len(args.data_dir) > 1:
                return fail("--arch small-cnn trains on one DATA_DIR.")
            from .small_cnn import train_small_cnn

            meta = train_small_cnn(args.data_dir[0], out, split_files=args.split, n_augment=args.augment,
                                   epochs=args.epochs, hop_s=args.hop, progress=not args.quiet, log=log)
        else:
            from .train import QUICK_GRID, train_head

            meta = train_head(args.data_dir, out, split_files=args.split, groups_file=args.groups,
                              n_augment=args.augment, n_mic=args.mic,
                              live_sim=args.live_sim, grid=QUICK_GRID if args.quick else None,
                              n_splits=args.folds, repeats=args.repeats, hop_s=args.hop,
                              cache_dir=args.cache_dir, progress=not args.quiet, log=log)
    except (DatasetError, DecodeError) as err:
        return fail(str(err))
    m = meta["metrics"]
    print(f"saved {out}: {len(meta['labels'])} genres, window accuracy {m['window_accuracy']:.3f}, "
          f"track accuracy {m['track_accuracy']:.3f} (held out; {m['protocol']}), "
          f"uncertain below {meta['uncertain_threshold']}")
    return 0


def run_evaluate(args) -> int:
    from ..audio.decode import DecodeError
    from ..model import fast
    from ..model.genre_model import ModelError
    from ..model.registry import ModelNotFound, load_model
    from . import augment
    from .dataset import DatasetError
    from .evaluate import evaluate_collection

    try:
        model = load_model(args.model)
        conditions = augment.EVAL_CONDITIONS + (augment.LIVE_CONDITION,) if args.live_sim else ("clean",)
        with fast.precision(args.precision):
            res = evaluate_collection(model, args.data_dir, args.split, conditions, args.hop,
                                      progress=not (args.quiet or args.json))
    except (ModelNotFound, ModelError, DatasetError, DecodeError) as err:
        return fail(str(err))
    clean = res["conditions"]["clean"]
    report = {"model": res["model"], **clean, "content_folders": res["content_folders"],
              "skipped_folders": res["skipped_folders"], "failed_tracks": res["failed_tracks"]}
    if args.live_sim:
        report["live_sim"] = {c: {k: m[k] for k in ("window_accuracy", "track_accuracy", "macro_f1",
                                                     "uncertain_rate")}
                              for c, m in res["conditions"].items()}
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
    return 0 if clean["n_tracks"] or sum(clean["content"]["windows"].values()) else 1


def _print_content(c: dict) -> None:
    """The content confusion (windows; rows true, columns decided) and the rates that matter on air."""
    labels = c["labels"]
    w = max(len(s) for s in labels)
    print("  content (windows; rows true, columns decided):")
    print("  " + " " * w + " " + " ".join(f"{s:>8}" for s in labels))
    for lab, row in zip(labels, c["confusion"]):
        if sum(row):
            print(f"  {lab:>{w}} " + " ".join(f"{v:>8}" for v in row))
    if c["speech_recall"] is not None:
        print(f"  speech windows reported as speech  {c['speech_recall']:.3f}")
    if c["music_as_speech"] is not None:
        print(f"  music windows reported as speech   {c['music_as_speech']:.4f} "
              f"(not music: {c['music_not_music']:.4f})")
        print("  per genre, as speech: " + ", ".join(f"{g} {v['as_speech']:.3f}" for g, v in c["per_genre"].items()))


def _print_report(r: dict) -> None:
    for folder, n in r["skipped_folders"].items():
        print(f"skipped {n} track(s) in '{folder}': not a genre of model {r['model']}")
    for track, msg in r["failed_tracks"].items():
        print(f"skipped {track}: {msg}")
    print(f"model {r['model']}: {r['n_tracks']} tracks, {r['n_windows']} windows")
    if r["content_folders"]:
        _print_content(r["content"])
        print(f"  window accuracy counting windows not taken for music as wrong "
              f"{r['window_accuracy_with_content']:.3f}")
    if not r["n_tracks"]:
        return
    print(f"  track accuracy  {r['track_accuracy']:.3f} (genre-balanced {r['balanced_track_accuracy']:.3f})")
    print(f"  window accuracy {r['window_accuracy']:.3f}")
    print(f"  macro F1        {r['macro_f1']:.3f}")
    print(f"  uncertain       {r['uncertain_rate']:.3f} of windows")
    print("  recall per genre: " + ", ".join(f"{k} {v:.2f}" for k, v in r["per_genre_recall"].items()))
    labels = r["labels"]
    w = max(len(s) for s in labels)
    print("  confusion (tracks; rows true, columns predicted):")
    print("  " + " " * w + " " + " ".join(f"{s[:4]:>4}" for s in labels))
    for lab, row in zip(labels, r["confusion"]):
        print(f"  {lab:>{w}} " + " ".join(f"{v:>4}" for v in row))
    if "live_sim" in r:
        print("  live simulation:   window  track  macroF1  uncertain")
        for c, m in r["live_sim"].items():
            print(f"  {c:>16}   {m['window_accuracy']:.3f}  {m['track_accuracy']:.3f}  {m['macro_f1']:.3f}"
                  f"   {m['uncertain_rate']:.3f}")
