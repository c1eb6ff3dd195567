"""The production HTTP server: gunicorn's threaded (gthread) worker, run in this process.

Flask-SocketIO's threading mode serves WebSockets (simple-websocket) under gunicorn's gthread
worker. Gunicorn normally forks that worker from an arbiter process; here the engine, its
sources and the history writer already run in this process when serving starts, and a fork
would leave their threads behind, so the one worker runs in this process instead: no arbiter,
no second process, the engine once.

Every stop signal (SIGTERM, SIGINT, SIGHUP, SIGQUIT) stops in order: the listening socket
closes, ``on_stop`` runs (the caller closes its Socket.IO sessions there, whose WebSockets
would otherwise hold the worker open), requests in flight get ``GRACE`` seconds, then ``run``
returns and the caller stops the engine and flushes the history.

A connection gets ``HEADER_TIMEOUT`` seconds in all to send a request's line and headers, after
which it is cut: gunicorn bounds each read but not their sum, and a client trickling header bytes
(slowloris) would otherwise hold a thread for as long as it likes. A response may set a send
deadline on its socket (``server.web.streaming``); when it passes, the connection ends with one
log line instead of gunicorn's traceback.

The worker is subclassed (``get_thread_pool``, ``is_parent_alive``, ``init_signals``, ``handle_exit``, ``handle``,
``handle_request``, ``murder_keepalived``) and built
without an arbiter (``Worker(age, ppid, sockets, app, timeout, cfg, log)``, ``init_process``):
requirements.txt holds gunicorn to the tested release line and tests/test_http_server.py fails,
naming what moved, when an upgrade changes any of them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import queue
import threading
import time
from concurrent import futures

from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
THREADS = 1000      # requests served at once; every open WebSocket holds one (a dashboard, a watcher)
KEEPALIVE = 5       # seconds an idle HTTP/1.1 connection is kept
GRACE = 5           # seconds requests in flight get after a stop signal
IDLE_THREAD = 5.0   # seconds an idle request thread waits for work before it ends
HEADER_TIMEOUT = 10.0  # seconds a connection has for a request's line and headers (gunicorn waits 5 s of it idle)
BACKLOG = 2048      # connections the kernel queues while every thread is busy


class ServerError(RuntimeError):
    """The server cannot start (e.g. the address is in use); the message says why."""


def listen(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6, as the host resolves)."""
    try:
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def gunicorn_config(*, threads: int = THREADS, trusted_proxies=(), debug: bool = False) -> Config:
    """Gunicorn's settings for the in-process worker.

    ``trusted_proxies`` (addresses or networks) may set the scheme headers (X-Forwarded-Proto);
    nobody else may: gunicorn's own default trusts 127.0.0.1.
    """
    cfg = Config()
    cfg.set("threads", threads)
    cfg.set("worker_connections", threads + 100)  # kept-alive idle connections beyond the busy threads
    cfg.set("keepalive", KEEPALIVE)
    cfg.set("graceful_timeout", GRACE)
    cfg.set("forwarded_allow_ips", ",".join(trusted_proxies))
    cfg.set("accesslog", "-" if debug else None)
    cfg.set("loglevel", "debug" if debug else "warning")
    return cfg


class ElasticThreadPool:
    """gunicorn's request threads: up to ``max_workers``, each ending after ``idle`` seconds without
    work (``futures.ThreadPoolExecutor`` keeps every thread it ever started, so a burst of
    connections would leave its threads behind for good). Daemon threads: a stop never waits on a
    client that does not answer."""

    def __init__(self, max_workers: int, idle: float = IDLE_THREAD):
        self.max_workers, self.idle = max_workers, idle
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Held under the lock: _free == threads waiting for work - work items queued, so a submit
        # starts a thread exactly when no waiting thread is left over for it (negative: a backlog).
        self._threads = self._free = 0
        self._shut = False

    def submit(self, fn, *args) -> futures.Future:
        future = futures.Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot submit after shutdown")
            self._work.put((future, fn, args))
            self._free -= 1  # below 0: work waits for a thread (every one busy, at max_workers)
            if self._free < 0 and self._threads < self.max_workers:
                self._threads += 1
                self._free += 1
                threading.Thread(target=self._run, name="http-request", daemon=True).start()
        return future

    def _run(self) -> None:
        while True:
            try:
                item = self._work.get(timeout=self.idle)
            except queue.Empty:
                with self._lock:
                    if self._work.empty():  # no submit is counting on this thread: it ends
                        self._free -= 1
                        self._threads -= 1
                        return
                continue
            if item is None:  # shutdown
                with self._lock:
                    self._threads -= 1
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
            with self._lock:
                self._free += 1

    def shutdown(self, wait: bool = False) -> None:
        with self._lock:
            self._shut = True
            n = self._threads
        for _ in range(n):
            self._work.put(None)

    @property
    def threads(self) -> int:
        return self._threads


class _App:
    """What a gunicorn worker asks of its application object."""

    def __init__(self, wsgi, cfg):
        self._wsgi = wsgi
        self.cfg = cfg

    def wsgi(self):
        return self._wsgi


class InProcessWorker(ThreadWorker):
    """A gthread worker that is the whole server: no arbiter watches it, every stop signal stops it."""

    def __init__(self, *args, on_stop=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_stop = on_stop
        self.stop_signal: int | None = None
        self._reading: dict = {}  # connection -> when its request's headers are due
        self._reading_lock = threading.Lock()

    def get_thread_pool(self):
        return ElasticThreadPool(self.cfg.threads)

    def is_parent_alive(self) -> bool:
        return True  # no arbiter: the parent is whoever started us (a shell, systemd), not a supervisor

    def init_signals(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.handle_exit)
            signal.siginterrupt(sig, False)
        signal.signal(signal.SIGUSR1, self.handle_usr1)  # reopen log files, as gunicorn does

    def handle_exit(self, sig, frame) -> None:
        if self.alive and sig is not None:
            self.stop_signal = sig
            log.warning("%s: stopping", signal.Signals(sig).name)
            if self.on_stop is not None:  # not in the signal handler: it may wait on locks
                threading.Thread(target=self.on_stop, name="http-server-stop", daemon=True).start()
        super().handle_exit(sig, frame)

    # --- a deadline for a request's headers ---------------------------------------------------------------
    def handle(self, conn):
        with self._reading_lock:
            self._reading[conn] = time.monotonic() + HEADER_TIMEOUT
        try:
            return super().handle(conn)
        finally:
            with self._reading_lock:
                self._reading.pop(conn, None)

    def handle_request(self, req, conn):
        with self._reading_lock:  # the headers are in: the request (a WebSocket, an upload) takes its time
            self._reading.pop(conn, None)
        try:
            return super().handle_request(req, conn)
        except TimeoutError:  # a send deadline the response set (web.streaming): the client stopped reading
            log.warning("a client stopped reading its response; the connection was cut")
            return False  # gunicorn would log a traceback; the connection closes either way

    def murder_keepalived(self, force=False):  # gthread's main loop calls this about once a second
        super().murder_keepalived(force)
        now = time.monotonic()
        with self._reading_lock:
            late = [conn for conn, due in self._reading.items() if due < now]
            for conn in late:
                del self._reading[conn]
        for conn in late:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)  # its thread's read returns: the request ends there
            except OSError:
                pass

    def stop(self) -> None:
        """Stop as a stop signal would (from any thread)."""
        self.handle_exit(signal.SIGTERM, None)


def run(wsgi_app, listener: socket.socket, *, on_stop=None, threads: int = THREADS, trusted_proxies=(),
        debug: bool = False, on_ready=None) -> int | None:
    """Serve ``wsgi_app`` on ``listener`` until a stop signal; returns the signal's number.

    Must run in the main thread (signal handlers). ``on_stop()`` runs in a thread of its own
    when the stop begins; ``on_ready(worker)`` once the worker is about to serve.
    """
    if threading.current_thread() is not threading.main_thread():
        raise ServerError("the HTTP server must run in the main thread (it handles the stop signals)")
    cfg = gunicorn_config(threads=threads, trusted_proxies=trusted_proxies, debug=debug)
    if on_ready is not None:
        cfg.set("post_worker_init", on_ready)
    gunicorn_log = Logger(cfg)
    worker = InProcessWorker(0, os.getppid(), [listener], _App(wsgi_app, cfg), cfg.timeout, cfg, gunicorn_log,
                             on_stop=on_stop)
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        worker.init_process()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        worker.tmp.close()
        for fd in worker.PIPE:
            os.close(fd)
        listener.close()
    return worker.stop_signal
