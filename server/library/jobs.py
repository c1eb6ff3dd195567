"""One library run at a time in the background, with progress that a page can poll (the web API's)."""

from __future__ import annotations

import logging
import threading
import time

from .report import report_rows
from .runner import run_library
from .store import LibraryStore

log = logging.getLogger(__name__)


class JobBusy(Exception):
    """A run is already going."""


class LibraryJobs:
    """``start(folders, full)`` runs ``run_library`` on a thread; ``status()`` says how far it got."""

    def __init__(self, db_path, model_name: str | None = None, jobs: int | None = None):
        self.db_path = db_path
        self.model_name = model_name
        self.jobs = jobs
        self._lock = threading.Lock()
        self._state: dict = {"state": "idle"}
        self._thread: threading.Thread | None = None
        self.last_results: list[dict] | None = None

    def status(self) -> dict:
        with self._lock:
            s = dict(self._state)
        if s.get("state") == "running" and s.get("done") and s.get("first_at"):
            elapsed = time.time() - s["first_at"]
            rate = (s["done"] - 1) / elapsed if s["done"] > 1 and elapsed > 0 else None
            s["rate_tracks_per_s"] = round(rate, 3) if rate else None
            s["eta_s"] = round((s["total"] - s["done"]) / rate, 1) if rate else None
        s.pop("first_at", None)
        return s

    def start(self, folders: list[str], full: bool = False) -> dict:
        with self._lock:
            if self._state.get("state") == "running":
                raise JobBusy("a library run is already going; wait for it to finish")
            self._state = {"state": "running", "folders": folders, "full": full, "started": time.time(),
                           "done": 0, "total": None, "reused": None}
            self._thread = threading.Thread(target=self._run, args=(folders, full), daemon=True, name="library-run")
            self._thread.start()
        return self.status()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _update(self, **changes) -> None:
        with self._lock:
            self._state.update(changes)

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            if done == 1:
                self._state["first_at"] = time.time()
            self._state.update(done=done, total=total)

    def _run(self, folders: list[str], full: bool) -> None:
        from ..model.registry import load_model

        store = None
        final: dict
        try:
            model = load_model(self.model_name)
            store = LibraryStore(self.db_path)
            run = run_library(folders, store, model, full=full, jobs=self.jobs, on_progress=self._progress,
                              on_plan=lambda todo, reused: self._update(total=todo, reused=reused))
            self.last_results = report_rows(run.results)
            final = {"state": "done", "summary": run.summary(),
                     "skipped": [{"path": p, "reason": why} for p, why in run.skipped]}
        except Exception as exc:  # the page shows it; the server goes on
            log.exception("library run failed")
            final = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            if store is not None:
                store.close()
        self._update(finished=time.time(), **final)  # last: a new run may start from here on
