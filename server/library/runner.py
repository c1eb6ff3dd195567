"""A library run: scan, reuse stored results, analyse the rest on a process pool (one process per
core, each with a one-thread model), store each result as it arrives."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable

from ..audio.decode import DecodeError
from .analysis import analyse_track
from .scan import scan
from .store import LibraryStore

log = logging.getLogger(__name__)
NOT_DECODABLE = "not decodable"


@dataclass
class LibraryRun:
    """What a run found: ``results`` (one dict per track, with its ``path``), ``skipped``
    (``[(path, reason)]``), how many were analysed now and how many came from the store."""

    results: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    analysed: int = 0
    failed: int = 0  # tried now and could not be analysed
    reused: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0  # of the tracks analysed now

    def summary(self) -> dict:
        music = [r for r in self.results if r["genre"] is not None]
        return {
            "tracks": len(self.results), "analysed": self.analysed, "failed": self.failed, "reused": self.reused,
            "genres": dict(Counter(r["genre"] for r in music).most_common()),
            "uncertain": sum(1 for r in music if r["uncertain"]),
            "not_music": dict(Counter(r["content"] for r in self.results if r["genre"] is None)),
            "skipped": len(self.skipped),
            "skipped_reasons": dict(Counter(_reason_kind(reason) for _p, reason in self.skipped)),
            "seconds": round(self.seconds, 2),
            "speed_x_real_time": round(self.audio_seconds / self.seconds, 1) if self.analysed and self.seconds else None,
        }


def _reason_kind(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0]


# Worker processes: the model is loaded once per process, with one thread (the pool uses the cores).
_model = None


def _watch_parent(parent: int) -> None:
    while True:  # a parent killed with -9 must not leave its workers behind
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _init_worker(model_name: str | None, parent: int, quiet: bool) -> None:
    global _model
    if quiet:  # libmpg123 reports every seek into a bit reservoir on stderr; results carry the real errors
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    os.environ["GENRE_MONITOR_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    from ..model.registry import load_model

    _model = load_model(model_name)


def _analyse_in_worker(path: str, full: bool) -> tuple[dict | None, str | None]:
    return _analyse_one(path, _model, full)


def _analyse_one(path: str, model, full: bool) -> tuple[dict | None, str | None]:
    try:
        return analyse_track(path, model, full), None
    except (DecodeError, OSError) as exc:
        return None, f"{NOT_DECODABLE}: {exc}"
    except Exception as exc:  # one bad file must not end the run
        log.debug("analysing %s", path, exc_info=True)
        return None, f"analysis failed: {type(exc).__name__}: {exc}"


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def run_library(folders: list[str], store: LibraryStore, model, *, full: bool = False, jobs: int | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                on_plan: Callable[[int, int], None] | None = None) -> LibraryRun:
    """Analyse what is new or changed under ``folders`` and return every track's result.

    ``model`` is the loaded model of this process (its name keys the stored results; the workers
    load their own). ``on_plan(to_analyse, reused)`` is called once the work is known,
    ``on_progress(done, to_analyse)`` after each analysed track. ``jobs`` 1 analyses in this process.
    """
    start = time.monotonic()
    found = scan(folders)
    run = LibraryRun(skipped=list(found.skipped))
    jobs = jobs or default_jobs()
    todo: list[tuple[str, str]] = []
    pool: ProcessPoolExecutor | None = None
    futures: dict = {}
    try:
        for path in found.files:
            try:
                key = store.key_of(path)  # hashes new and changed files: the workers start meanwhile
            except OSError as exc:
                run.skipped.append((path, f"cannot read: {exc.strerror or exc}"))
                continue
            cached = store.result(key, model.name, full)
            if cached is not None and "error" in cached:  # the same bytes failed before: not tried again
                run.skipped.append((path, cached["error"]))
            elif cached is not None:
                run.results.append({"path": path, **cached})
                run.reused += 1
            else:
                todo.append((path, key))
                if jobs > 1:
                    if pool is None:  # only when there is work: a re-run starts no processes
                        pool = ProcessPoolExecutor(
                            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),  # no inherited threads
                            initializer=_init_worker,
                            initargs=(_model_arg(model), os.getpid(), not log.isEnabledFor(logging.DEBUG)))
                    futures[pool.submit(_analyse_in_worker, path, full)] = (path, key)
        if on_plan:
            on_plan(len(todo), run.reused)
        attempted = 0

        def finish(path: str, key: str, result: dict | None, error: str | None) -> None:
            nonlocal attempted
            if result is None:
                run.failed += 1
                run.skipped.append((path, error))
                if error.startswith(NOT_DECODABLE):  # the file's fault, not the machine's: remembered
                    store.put(key, model.name, {"error": error, "mode": "full" if full else "fast"})
            else:
                store.put(key, model.name, result)
                run.results.append({"path": path, **result})
                run.audio_seconds += result["duration"]
                run.analysed += 1
            attempted += 1
            if on_progress:
                on_progress(attempted, len(todo))

        if pool is None:
            for path, key in todo:
                finish(path, key, *_analyse_one(path, model, full))
        else:
            try:
                for fut in as_completed(futures):
                    finish(*futures[fut], *fut.result())
            except BrokenProcessPool:
                done = {r["path"] for r in run.results} | {p for p, _r in run.skipped}
                for path, _key in todo:
                    if path not in done:
                        run.skipped.append((path, "analysis failed: a worker process died"))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    run.results.sort(key=lambda r: r["path"])
    run.seconds = time.monotonic() - start
    return run


def _model_arg(model) -> str | None:
    """What the workers pass to ``load_model`` to load the same model."""
    return getattr(model, "directory", None) or model.name
