"""Command-line entry points: ``worker``, and ``serve`` when given ``--redis``.

``register(sub)`` adds the ``worker`` subcommand to run.py's parser; ``add_serve_args``
adds ``--redis`` to ``serve`` and ``serve_cluster(args, …)`` runs it.
``python -m server.cluster worker|serve …`` runs the same code on its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from server.cli_errors import FAILED, fail


def register(sub) -> None:
    from server.config import DEFAULT_HOP_SECONDS
    from server.source_kinds import cli_usage

    from . import DEFAULT_CAPACITY, LEASE_TTL

    w = sub.add_parser("worker", help="run monitoring pipelines for the web tier, meeting it through Redis")
    w.add_argument("--redis", required=True, metavar="URL", help="redis://HOST:PORT/DB shared with the web tier")
    w.add_argument("--sources", nargs="*", default=[], metavar="SPEC",
                   help=f"register these sources ({cli_usage()}) if not registered yet")
    w.add_argument("--capacity", type=int, default=DEFAULT_CAPACITY, help="most sources this worker runs")
    w.add_argument("--history-url", default=None, metavar="URL",
                   help="history store: postgresql://… (shared by many workers) or a SQLite path "
                        "(this worker's alone) (default: none)")
    w.add_argument("--data-dir", default=None,
                   help="its settings.json configures the sinks: webhook, retention_days; shared with the "
                        "cluster's other processes, never with a standalone server "
                        "(default: $GENRE_MONITOR_DATA or ~/.local/share/genre-monitor)")
    w.add_argument("--model", default=None, help="model to load unless the cluster has selected one")
    w.add_argument("--hop", type=float, default=DEFAULT_HOP_SECONDS, help="seconds between windows (0.25–3)")
    w.add_argument("--fast", action="store_true", help="file sources run as fast as possible")
    w.add_argument("--worker-id", default=None, help="name in the cluster (default: host-pid-random)")
    w.add_argument("--lease-ttl", type=float, default=LEASE_TTL, help=argparse.SUPPRESS)
    w.set_defaults(func=cmd_worker)


def add_serve_args(serve) -> None:
    serve.add_argument("--redis", default=None, metavar="URL",
                       help="web tier of a cluster: sources run on workers sharing this Redis (docs/scaling.md)")


def cmd_worker(args) -> int:
    from server.engine import EngineError, validate_hop
    from server.settings import DataDirError, Settings, data_dir, lock_data_dir
    from server.sinks.from_settings import build_sinks
    from server.sinks.history_lock import HistoryLockError, lock_history_writer
    from server.source_specs import SourceSpecError, parse_cli_spec

    from .redis_conn import ClusterError
    from .worker import ClusterWorker, register_specs

    try:
        hop = validate_hop(args.hop)
        specs = [parse_cli_spec(s) for s in args.sources]
        data = data_dir(args.data_dir)
        # Shared with the cluster's other processes, never with a standalone server; an SQLite
        # history has one writer. Both held until this process ends.
        data_lock = lock_data_dir(data, shared=True)  # noqa: F841
        history_lock = lock_history_writer(args.history_url)  # noqa: F841
        settings = Settings(data / "settings.json")
    except (SourceSpecError, EngineError, DataDirError, HistoryLockError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot use the data directory: {exc}")
    sinks = build_sinks(settings, args.history_url)
    try:
        worker = ClusterWorker(args.redis, capacity=args.capacity, worker_id=args.worker_id,
                               lease_ttl=args.lease_ttl, model_name=args.model, hop=hop, fast=args.fast,
                               sinks=sinks.all())
        register_specs(worker.r, specs)
    except (ClusterError, EngineError, ValueError) as exc:
        sinks.close()
        return fail(str(exc))
    _stop_on_signals(worker.stop)
    print(f"worker {worker.id} on {args.redis} (capacity {worker.capacity})", flush=True)
    try:
        worker.run()
    finally:
        sinks.close()
    return 0


def serve_cluster(args, *, upload_dir: str, token=None, media_dirs=None) -> int:
    """``serve --redis URL``: the dashboard for a cluster (RemoteEngine + the message queue).

    Uses ``args.host/port/model/hop/history_url/require_token/allowed_origin``; the history
    API reads ``--history-url`` only (the workers write it), never a local SQLite file.
    """
    from server.config import DEFAULT_HOP_SECONDS
    from server.engine import EngineError
    from server.sinks.from_settings import open_history_reader
    from server.web.app import serve
    from server.web.http_server import ServerError
    from server.web.proxies import ProxyConfigError, TrustedProxies, configured_proxies

    from .remote_engine import RemoteEngine

    try:
        proxies = configured_proxies(getattr(args, "trusted_proxy", None))
        TrustedProxies(proxies)
    except ProxyConfigError as exc:
        return fail(str(exc))
    try:
        engine = RemoteEngine(args.redis, model_name=getattr(args, "model", None),
                              hop=getattr(args, "hop", None) or DEFAULT_HOP_SECONDS)
    except EngineError as exc:
        return fail(str(exc))
    os.makedirs(upload_dir, exist_ok=True)
    store = open_history_reader(getattr(args, "history_url", None))
    print(f"Genre Monitor (cluster on {args.redis}) on http://{args.host}:{args.port}", flush=True)
    try:
        serve(engine, host=args.host, port=args.port, upload_dir=upload_dir, store=store,
              media_dirs=media_dirs, token=token, require_token=getattr(args, "require_token", False),
              allowed_origins=getattr(args, "allowed_origin", None) or None, message_queue=args.redis,
              trusted_proxies=proxies)
    except ServerError as exc:
        return fail(str(exc), FAILED)
    finally:
        engine.shutdown()
        if store is not None:
            store.close()
    return 0


def _stop_on_signals(stop) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, lambda *_: stop())


def main(argv=None) -> int:
    """``python -m server.cluster worker …`` / ``serve --redis URL …`` (until run.py carries them)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m server.cluster")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    s = sub.add_parser("serve", help="the dashboard of a cluster")
    add_serve_args(s)
    s.add_argument("--history-url", default=None)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=5000)
    s.add_argument("--upload-dir", default="uploads")
    s.add_argument("--media-dir", action="append", default=[])
    s.add_argument("--token", default=None)
    s.add_argument("--model", default=None)
    s.add_argument("--trusted-proxy", action="append", default=[])
    s.set_defaults(func=lambda a: serve_cluster(a, upload_dir=a.upload_dir, token=a.token, media_dirs=a.media_dir))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve" and not args.redis:
        parser.error("serve needs --redis URL")
    return int(args.func(args) or 0)
