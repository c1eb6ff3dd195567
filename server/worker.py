"""The worker: every source's due windows → the model in one batch → monitors → sinks.

One background loop wakes whenever a pipeline has a window due (``wake``), collects
every pipeline's due window, classifies them together and hands each result to its
source's monitor and then to the sinks. A failure in one source stops only that
source; the worker and the other sources carry on.

The worker reads only the engine parts it needs: the sources' ``pipelines()`` and
``wake``, the model holder's ``current()``, the monitors' ``process`` and the event bus.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Callable

import numpy as np

from .audio.source import SourceState
from .model.tempo import LiveTempo, Tempo
from .model.stream_memory import release_streams
from .monitor.classified import ClassifiedWindow, Counters, classified
from .sinks.payloads import spectrogram_payload
from .stream.pipeline import Pipeline, Window

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.1  # how long the loop sleeps when no window is due and nothing wakes it


def thread_task(fn: Callable, *args) -> threading.Thread:
    """Run ``fn(*args)`` on a daemon thread (the default way to start background tasks)."""
    t = threading.Thread(target=fn, args=args, daemon=True, name=getattr(fn, "__name__", "task"))
    t.start()
    return t


class Worker:
    """The classify loop of one engine: ``start``/``stop``, ``tick`` for one pass."""

    def __init__(self, sources, models, monitors, events):
        """``sources``: ``pipelines()`` and ``wake`` (an Event the pipelines set when a window is due);
        ``models``: ``current()``; ``monitors``: ``process(window)``; ``events``: ``emit``,
        ``emit_events``, ``notice``, ``sources_changed`` (see ``server.engine``)."""
        self._sources = sources
        self._models = models
        self._monitors = monitors
        self._events = events
        self._running = False
        self._task = None
        # Per source: the pipeline and its (state, error, notice) last announced; a new pipeline
        # (the source restarted) is news again.
        self._last_states: dict[str, tuple] = {}
        self._tempi: dict[str, tuple[Pipeline, LiveTempo]] = {}  # per source: its pipeline's live tempo
        self._streams: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pipeline → its last stream key

    @property
    def wake(self) -> threading.Event:
        return self._sources.wake

    @property
    def running(self) -> bool:
        return self._running

    def is_alive(self) -> bool:
        """Whether the loop's thread runs (False before ``start`` or when started as another kind of task)."""
        return isinstance(self._task, threading.Thread) and self._task.is_alive()

    def start(self, start_task: Callable | None = None) -> None:
        """Run the loop as a background task (``start_task(fn)``, default a daemon thread)."""
        self._running = True
        self._task = (start_task or thread_task)(self.run)

    def stop(self, timeout: float | None = None) -> None:
        """End the loop; with ``timeout``, wait up to that long for it (when it runs on a thread)."""
        self._running = False
        self.wake.set()
        if timeout is not None and isinstance(self._task, threading.Thread):
            self._task.join(timeout)

    def run(self) -> None:
        log.info("worker started")
        busy = False
        while self._running:
            if not busy:  # when windows were due, look again at once: more may be waiting
                self.wake.wait(IDLE_WAIT_S)
                self.wake.clear()
            try:
                busy = self.tick() > 0
            except Exception:  # keep the worker alive whatever happens in one tick
                log.exception("worker tick failed")
                time.sleep(IDLE_WAIT_S)
        # What the loop kept per source goes with it (the tempo's native resamplers among it), rather
        # than at the interpreter's exit, where the bindings report it as leaked.
        self._tempi.clear()
        self._last_states.clear()

    def tick(self) -> int:
        """Classify every due window; return how many were classified."""
        pipelines, model = self._sources.pipelines(), self._models.current()
        due: list[tuple[Pipeline, Window]] = []
        for p in pipelines:
            if p.failed or (model is None and p.lossless):
                continue  # failed: left stopped until restarted; batch sources wait for the model
            try:
                w = p.next_window()
            except Exception as exc:
                self.fail(p, exc)
                continue
            if w is not None:
                due.append((p, w))
        if due and model is not None:
            self._classify(due, model)
        # Spectrograms after predictions: they are larger and nobody waits on them.
        for _, w in due:
            if len(w.spec_times):
                self._events.emit("on_spectrogram", spectrogram_payload(w))
        self._announce_states(pipelines)
        return len(due) if model is not None else 0

    def _classify(self, due: list[tuple[Pipeline, Window]], model) -> None:
        try:
            a = model.analyse(np.stack([w.mel for _, w in due]), streams=[w.stream for _, w in due])
        except Exception as exc:
            log.exception("model failed")
            self._events.notice(f"the model failed on a batch: {exc}")
            return
        for i, (p, w) in enumerate(due):
            record = classified(w, a, i, model, Counters(p.windows, p.skipped, p.source.overflows), self._tempo(p, w))
            record, events = self._monitor(record)
            self._events.emit("on_prediction", record)
            self._events.emit_events(events)
        self._release_streams(due)

    def _release_streams(self, due: list[tuple[Pipeline, Window]]) -> None:
        """Frame-reuse memory no window will use again: a source stopped while its window was in
        the model, or a stream that started afresh (a jump, a loop) under a new key."""
        for p, w in due:
            last = self._streams.get(p)
            if self._sources.pipeline(p.source_id) is not p:
                release_streams(p.owns_stream)
            elif w.stream is not None and w.stream[0] != last:
                if last is not None:
                    release_streams(lambda key, last=last: key == last, trim=False)
                self._streams[p] = w.stream[0]

    def _tempo(self, p: Pipeline, w: Window) -> Tempo | None:
        """The source's tempo with this window's audio taken in; a restarted source starts afresh."""
        if w.audio is None:
            return None
        held = self._tempi.get(p.source_id)
        if held is None or held[0] is not p:
            held = self._tempi[p.source_id] = (p, LiveTempo())
        try:
            return held[1].update(w.end, w.audio, w.sr)
        except Exception:  # the tempo is extra: never let it stop the genre
            log.exception("tempo failed for %s", p.source_id)
            return None

    def _monitor(self, record: ClassifiedWindow) -> tuple[ClassifiedWindow, list]:
        try:
            return self._monitors.process(record)
        except Exception:
            log.exception("monitoring failed for %s", record.source)
            return record, []

    def fail(self, p: Pipeline, exc: Exception) -> None:
        """One source's pipeline raised: stop that source only, say why; a restart revives it."""
        log.exception("source %s failed", p.source_id)
        p.failed = True
        s = p.source
        # Before stopping, so that a lossless source's writer, waiting for room, gives up.
        s.fail(f"processing failed: {type(exc).__name__}: {exc}")
        try:
            p.stop()
        except Exception:
            log.exception("stopping failed source %s", p.source_id)
        s.fail(f"{s.error or 'processing failed'}; restart the source to try again")
        self._last_states[p.source_id] = (p, s.state, s.error, s.notice)  # announced here, not again
        self._events.notice(s.error, source=p.source_id)
        self._events.sources_changed()

    def _announce_states(self, pipelines: list[Pipeline]) -> None:
        """A notice for each source that newly failed or has a new notice; the sources list when any changed."""
        changed = False
        for sid in set(self._last_states) - {p.source_id for p in pipelines}:
            del self._last_states[sid]  # stopped
            self._tempi.pop(sid, None)
        for p in pipelines:
            s = p.source
            key = (p, s.state, s.error, s.notice)
            old = self._last_states.get(p.source_id)
            if old == key:
                continue
            if old is not None and old[0] is not p:
                old = None  # restarted: as new
            self._last_states[p.source_id] = key
            changed = True
            if old is not None and s.state == SourceState.ERROR and s.error:
                self._events.notice(s.error, source=p.source_id)
            elif old is not None and s.notice and s.notice != old[3]:
                self._events.notice(s.notice, level="warning", source=p.source_id)
        if changed:
            self._events.sources_changed()
