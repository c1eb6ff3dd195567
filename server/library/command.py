"""``run.py library DIR...``: analyse a music library, report, playlists, tags (and undo)."""

from __future__ import annotations

import os
import sys
import time

from ..cli_errors import fail

EPILOG = """Results are kept in DATA_DIR/library.sqlite: a second run analyses only new or changed files
(a moved file is recognised by its content). --write-tags alone shows what would change (old → new);
add --apply to write. Files that already have a genre are left alone unless --overwrite-tags."""


def register(sub) -> None:
    p = sub.add_parser("library", help="genre and tempo of a music library (folders, recursively)",
                       description=__doc__, epilog=EPILOG)
    p.add_argument("folders", nargs="*", metavar="DIR", help="folders (or files) to analyse")
    p.add_argument("--full", action="store_true", help="analyse every second of every track (slower)")
    p.add_argument("--report", metavar="FILE.csv|FILE.json", help="write every track's result")
    p.add_argument("--playlists", metavar="DIR", help="write one M3U playlist per genre")
    p.add_argument("--write-tags", action="store_true", help="genre and BPM into the files' tags (dry run unless --apply)")
    p.add_argument("--apply", action="store_true", help="with --write-tags: really write")
    p.add_argument("--overwrite-tags", action="store_true", help="with --write-tags: replace genres already there")
    p.add_argument("--undo-log", metavar="LOG", help="where --apply logs the old tags (default: DATA_DIR/tag-undo-TIME.jsonl)")
    p.add_argument("--undo", metavar="LOG", help="restore the tags logged by an earlier --write-tags --apply, and stop")
    p.add_argument("--model", default=None, help="installed model name or model directory")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    p.add_argument("--data-dir", default=None, help="where results are kept (default: as serve)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_library)



def cmd_library(args) -> int:
    from ..settings import data_dir
    from . import tags
    from .store import FILE_NAME, LibraryStore

    try:
        data = data_dir(args.data_dir)
    except OSError as exc:
        return fail(f"cannot use the data directory: {exc}")
    store = LibraryStore(data / FILE_NAME)
    try:
        if args.undo:
            try:
                keys = {p: store.key_of(p) for p in tags.read_undo_log(args.undo) if os.path.isfile(p)}
                restored, errors = tags.undo(args.undo, on_written=lambda p: store.rekey(p, keys[p]))
            except tags.TagError as exc:
                return fail(str(exc))
            for path, why in errors:
                fail(f"{path}: {why}")
            print(f"restored the tags of {restored} file(s)")
            return 1 if errors else 0
        if not args.folders:
            return fail("give at least one folder (or --undo LOG)")
        if args.jobs is not None and args.jobs < 1:
            return fail("--jobs must be at least 1")
        if args.report and os.path.splitext(args.report)[1].lower() not in (".csv", ".json"):
            return fail("--report must end in .csv or .json")
        return _run(args, store, data)
    finally:
        store.close()


def _run(args, store, data) -> int:
    from ..model.registry import load_model
    from . import tags
    from .playlists import write_playlists
    from .report import summary_text, write_report
    from .runner import run_library

    try:
        model = load_model(args.model)
    except Exception as exc:
        return fail(f"cannot load model {args.model or 'default'}: {exc}")
    bar = None

    def plan(todo: int, reused: int) -> None:
        nonlocal bar
        if reused:
            print(f"{reused} track(s) already analysed", file=sys.stderr)
        if todo and not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=todo, unit="track", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    run = run_library(args.folders, store, model, full=args.full, jobs=args.jobs, on_progress=progress, on_plan=plan)
    if bar is not None:
        bar.close()
    print(summary_text(run.summary(), run.skipped))
    if args.report:
        write_report(args.report, run.results)
        print(f"report: {args.report}")
    if args.playlists:
        for path in write_playlists(args.playlists, run.results):
            print(f"playlist: {path}")
    failed = 0
    if args.write_tags:
        changes = tags.plan(run.results, overwrite=args.overwrite_tags)
        for ch in changes:
            print(("" if args.apply else "would write ") + ch.describe())
        if args.apply:
            log = args.undo_log or str(data / time.strftime("tag-undo-%Y%m%d-%H%M%S.jsonl"))
            keys = {ch.path: store.key_of(ch.path) for ch in changes if not ch.skip}
            errors = tags.apply(changes, log, on_written=lambda p: store.rekey(p, keys[p]))
            for path, why in errors:
                fail(f"{path}: {why}")
            failed = len(errors)
            print(f"tags written; undo with: run.py library --undo {log}")
        else:
            print("dry run: add --apply to write these tags")
    return 1 if failed else 0
