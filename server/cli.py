"""Command line: serve (default), devices, classify, library, train, evaluate."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .cli_errors import FAILED, fail
from .config import DEFAULT_HOP_SECONDS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000


def _hop(text: str) -> float:
    from .engine import EngineError, validate_hop

    try:
        return validate_hop(float(text))
    except (ValueError, EngineError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    from .source_kinds import cli_usage

    parser = argparse.ArgumentParser(prog="run.py", description="Genre Monitor: live music-genre monitoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the dashboard (the default command)")
    serve.add_argument("--source", action="append", default=[], metavar="SPEC",
                       help=f"{cli_usage()} (repeatable; default: demo)")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--hop", type=_hop, default=DEFAULT_HOP_SECONDS, help="seconds between windows (0.25–3)")
    serve.add_argument("--model", default=None, help="installed model name or model directory")
    serve.add_argument("--fast", action="store_true", help="file sources run as fast as possible, not in real time")
    serve.add_argument("--output-device", default=None, metavar="DEVICE",
                       help="also play file sources aloud on this output device (index or name)")
    serve.add_argument("--data-dir", default=None,
                       help="history, uploads and settings (default: $GENRE_MONITOR_DATA or ~/.local/share/genre-monitor)")
    serve.add_argument("--history-url", default=os.environ.get("GENRE_MONITOR_HISTORY_URL"),
                       help="history database: postgresql://user@host:port/db or sqlite:///path "
                            "(default: DATA_DIR/history.sqlite)")
    serve.add_argument("--upload-dir", default=None, help="where browser uploads are stored (default: DATA_DIR/uploads)")
    serve.add_argument("--media-dir", action="append", default=[], metavar="DIR",
                       help="folder whose files the browser/API may play (repeatable; default: none)")
    serve.add_argument("--token", default=None,
                       help="access token (≥16 chars); default $GENRE_MONITOR_TOKEN, then settings 'token'; "
                            "generated and printed when listening beyond loopback")
    serve.add_argument("--require-token", action="store_true", help="require the token on 127.0.0.1 too")
    serve.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                       help="extra browser origin, e.g. https://monitor.example.org behind a reverse proxy")
    serve.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                       help="reverse proxy (address or network) whose X-Forwarded-For/Forwarded name the client "
                            "(repeatable; default $GENRE_MONITOR_TRUSTED_PROXIES, else none; docs/deployment.md)")
    serve.set_defaults(func=cmd_serve)

    from .cluster.commands import add_serve_args, register as register_cluster

    add_serve_args(serve)      # serve --redis URL: the web tier of a cluster
    register_cluster(sub)      # worker --redis URL --sources SPEC... [--capacity N] [--history-url URL]

    devices = sub.add_parser("devices", help="list audio input devices")
    devices.add_argument("--json", action="store_true")
    devices.set_defaults(func=cmd_devices)

    classify = sub.add_parser("classify", help="classify audio files")
    classify.add_argument("files", nargs="+", metavar="FILE")
    classify.add_argument("--model", default=None)
    classify.add_argument("--hop", type=_hop, default=DEFAULT_HOP_SECONDS)
    classify.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    classify.set_defaults(func=cmd_classify)

    from .library.command import register as register_library

    register_library(sub)  # library DIR... [--full] [--report FILE] [--playlists DIR] [--write-tags] [--undo LOG]

    try:
        from .training.commands import register
    except ImportError:  # training extras are optional at run time
        pass
    else:
        register(sub)
    return parser


def cmd_serve(args) -> int:
    from .engine import Engine, EngineError
    from .library.store import FILE_NAME as LIBRARY_DB
    from .settings import DataDirError, Settings, data_dir, lock_data_dir
    from .sinks.from_settings import build_sinks
    from .sinks.history_lock import HistoryLockError, lock_history_writer
    from .source_specs import SourceSpecError, parse_cli_spec
    from .web.app import serve

    try:
        specs = [parse_cli_spec(s) for s in args.source]
        data = data_dir(args.data_dir)
    except SourceSpecError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot use the data directory: {exc}")
    # One standalone server per data directory (the web tiers of a cluster share theirs), and one
    # writer per SQLite history; both held until this process ends.
    try:
        data_lock = lock_data_dir(data, shared=bool(args.redis))  # noqa: F841 (kept while serving)
        history_lock = None if args.redis else lock_history_writer(  # noqa: F841
            args.history_url or data / "history.sqlite")
    except (DataDirError, HistoryLockError) as exc:
        return fail(str(exc))
    settings = Settings(data / "settings.json")
    from .web.auth import AuthConfigError, configured_token, resolve_token
    from .web.http_server import ServerError
    from .web.media import MediaPathError, normalise_dirs
    from .web.proxies import ProxyConfigError, TrustedProxies, configured_proxies
    from .web.uploads import UploadDirError, prepare_upload_dir

    # Refuse a bad token, media, upload folder or proxy before anything starts listening or capturing.
    try:
        token = resolve_token(args.host, configured_token(args.token, settings["token"]), args.require_token)
        media_dirs = normalise_dirs(args.media_dir)
        prepare_upload_dir(args.upload_dir or data / "uploads")
        args.trusted_proxy = configured_proxies(args.trusted_proxy)
        TrustedProxies(args.trusted_proxy)
    except (AuthConfigError, MediaPathError, UploadDirError, ProxyConfigError) as exc:
        return fail(str(exc))
    if args.redis:  # sources run on workers; this process serves the dashboard only
        from .cluster.commands import serve_cluster

        return serve_cluster(args, upload_dir=args.upload_dir or str(data / "uploads"), token=token,
                             media_dirs=media_dirs)
    # Sources given on the command line win; otherwise those running at the last stop, else the demo.
    specs = specs or list(settings["sources"]) or [{"kind": "demo"}]
    engine = Engine(model_name=args.model, hop=args.hop, fast=args.fast, settings=settings)
    sinks = build_sinks(settings, args.history_url or data / "history.sqlite")
    for sink in sinks.all():
        engine.add_sink(sink)
    for spec in specs:
        if args.output_device is not None and spec["kind"] in ("demo", "file"):
            spec["output_device"] = int(args.output_device) if args.output_device.isdigit() else args.output_device
        try:
            engine.start_source(spec)
        except EngineError as exc:
            # The dashboard still starts: the user can pick another source there.
            logging.getLogger("genre-monitor").error("%s", exc)
    upload_dir = args.upload_dir or str(data / "uploads")
    os.makedirs(upload_dir, exist_ok=True)
    print(f"Genre Monitor on http://{args.host}:{args.port}", flush=True)
    try:
        serve(engine, host=args.host, port=args.port, upload_dir=upload_dir, store=sinks.history, token=token,
              require_token=args.require_token, media_dirs=media_dirs, allowed_origins=args.allowed_origin,
              trusted_proxies=args.trusted_proxy, debug=getattr(args, "verbose", False),
              library_db=data / LIBRARY_DB)
    except ServerError as exc:
        return fail(str(exc), FAILED)
    finally:
        engine.shutdown()
        sinks.close()
    return 0


def cmd_devices(args) -> int:
    from .audio.devices import list_input_devices

    try:
        devices = list_input_devices()
    except Exception as exc:
        return fail(f"cannot list audio devices: {exc}", FAILED)
    if args.json:
        print(json.dumps(devices, indent=2))
        return 0
    if not devices:
        print("no audio input devices found")
    for d in devices:
        mark = "*" if d.get("is_default") else " "
        index = "-" if d.get("index") is None else d["index"]
        name = d.get("label") or d["name"]
        use = f"  use mic:{d['device']}" if d.get("loopback") and d.get("device") else ""
        print(f"{mark} {index:>3}  {name}  ({d['max_input_channels']} ch, "
              f"{d['default_samplerate']:.0f} Hz, {d.get('hostapi', '')}){use}")
    return 0


def cmd_classify(args) -> int:
    from .audio.decode import DecodeError
    from .classify import classify_file
    from .model.registry import load_model

    try:
        model = load_model(args.model)
    except Exception as exc:
        return fail(f"cannot load model {args.model or 'default'}: {exc}")
    failed = 0
    for path in args.files:
        try:
            result = classify_file(path, model, hop_s=args.hop)
        except (DecodeError, OSError) as exc:
            failed += 1
            fail(f"{path}: {exc}")
            continue
        except Exception as exc:  # one bad file must not end the run with a traceback
            failed += 1
            logging.getLogger("genre-monitor").debug("classifying %s", path, exc_info=True)
            fail(f"{path}: could not classify ({type(exc).__name__}: {exc})")
            continue
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            note = " (uncertain)" if result["uncertain"] else ""
            note += " (shorter than 3 s: padded)" if result["padded"] else ""
            if result["genre"] is None:
                share = result["content_share"][result["content"]]
                print(f"{path}: {result['content']} ({share:.0%} of windows){note}", flush=True)
            else:
                print(f"{path}: {result['genre']} {result['confidence']:.2f}{note}", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides our messages
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "-v", "--verbose"):
        argv = ["serve", *argv]
    elif argv in (["-v"], ["--verbose"]):
        argv = [*argv, "serve"]
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        args = parser.parse_args([*argv, "serve"])
    return int(args.func(args) or 0)
