"""The production HTTP server (``server.web.http_server``) and trusted proxies (``server.web.proxies``).

The end-to-end tests run the real server (``run.py serve`` or ``serve()`` in a subprocess):
a dashboard on the WebSocket transport alone, every stop signal stopping it in order with
the history flushed, and the per-address session cap seeing the clients behind a trusted
proxy, never a forged header.
"""

import inspect
import json
import signal
import sqlite3
import threading
import time
import urllib.request

import pytest
import socketio
import websocket

from server.web import http_server
from server.web.proxies import ProxyConfigError, TrustedProxies, configured_proxies
from server.web.sessions import MAX_SESSIONS_PER_CLIENT
from tests.support.wait import wait_until
from tests.support.web import app_server, live_server


# --- what the server takes from gunicorn --------------------------------------------------------------
def test_the_gunicorn_internals_the_server_relies_on():
    """http_server builds gunicorn's gthread worker without an arbiter and overrides three of its
    methods; an upgrade that moves any of these fails here, by name."""
    from gunicorn.config import Config
    from gunicorn.workers.base import Worker
    from gunicorn.workers.gthread import ThreadWorker

    params = list(inspect.signature(Worker.__init__).parameters)
    assert params == ["self", "age", "ppid", "sockets", "app", "timeout", "cfg", "log"], params
    for name in ("is_parent_alive", "init_signals", "handle_exit", "handle_usr1", "init_process", "run", "handle",
                 "handle_request", "murder_keepalived"):
        assert callable(getattr(ThreadWorker, name, None)), f"gunicorn's ThreadWorker has no {name}()"
    settings = Config().settings
    for name in ("threads", "worker_connections", "keepalive", "graceful_timeout", "forwarded_allow_ips",
                 "accesslog", "loglevel", "post_worker_init"):
        assert name in settings, f"gunicorn has no setting {name!r}"
    cfg = http_server.gunicorn_config(trusted_proxies=["10.0.0.0/8"])
    assert cfg.threads == http_server.THREADS and cfg.forwarded_allow_ips == ["10.0.0.0/8"]
    assert http_server.gunicorn_config().forwarded_allow_ips == []  # gunicorn's default trusts 127.0.0.1


def test_an_address_in_use_is_a_clear_error():
    taken = http_server.listen("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(http_server.ServerError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            http_server.listen("127.0.0.1", port)
    finally:
        taken.close()


def test_request_threads_are_made_as_needed_and_end_when_idle():
    pool = http_server.ElasticThreadPool(max_workers=50, idle=0.3)
    gate, started = threading.Event(), []
    try:
        # 20 requests that block (open WebSockets): 20 threads, each running at once.
        held = [pool.submit(lambda i: started.append(i) or gate.wait(10) and i, i) for i in range(20)]
        wait_until(lambda: len(started) == 20, 5, 0.01)
        assert pool.threads == 20
        gate.set()
        assert sorted(f.result(5) for f in held) == list(range(20))
        # One thread left waiting and two requests at once: both run, neither waits for the other.
        wait_until(lambda: pool.threads == 0, 5, 0.05)
        first = pool.submit(time.sleep, 0.05)
        first.result(5)
        both = threading.Event()
        a = pool.submit(both.wait, 5)
        b = pool.submit(both.set)
        assert a.result(5) is True and b.exception(5) is None
        wait_until(lambda: pool.threads == 0, 5, 0.05)  # idle threads end: a burst leaves none behind
        failing = pool.submit(lambda: 1 / 0)
        assert isinstance(failing.exception(5), ZeroDivisionError)
        # More work than threads: it waits its turn, and threads are still made once some end.
        small = http_server.ElasticThreadPool(max_workers=2, idle=0.3)
        gate.clear()
        blocked = [small.submit(gate.wait, 10) for _ in range(4)]
        time.sleep(0.2)
        assert small.threads == 2 and not any(f.done() for f in blocked)
        gate.set()
        assert all(f.result(5) for f in blocked)
        wait_until(lambda: small.threads == 0, 5, 0.05)
        assert small.submit(lambda: 7).result(5) == 7
    finally:
        pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(print)


# --- trusted proxies ----------------------------------------------------------------------------------
def test_forwarded_addresses_are_believed_only_from_trusted_proxies():
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    xff = {"HTTP_X_FORWARDED_FOR": "203.0.113.7, 10.1.2.3"}
    assert proxies.client("127.0.0.1", xff) == "203.0.113.7"     # through two trusted proxies
    assert proxies.client("192.0.2.9", xff) == "192.0.2.9"       # not a proxy: its header is nobody's word
    # A client forging the leftmost entries: only what a trusted proxy appended counts.
    assert proxies.client("127.0.0.1", {"HTTP_X_FORWARDED_FOR": "1.1.1.1, 203.0.113.7"}) == "203.0.113.7"
    # RFC 7239, IPv6 with a port, preferred over X-Forwarded-For.
    both = {"HTTP_FORWARDED": 'for=192.0.2.60;proto=https, for="[2001:db8::17]:4711"',
            "HTTP_X_FORWARDED_FOR": "198.51.100.1"}
    assert proxies.client("10.9.9.9", both) == "2001:db8::17"
    # An entry that is no address ends the walk at the last one that was.
    assert proxies.client("127.0.0.1", {"HTTP_X_FORWARDED_FOR": "unknown, 10.0.0.5"}) == "10.0.0.5"
    assert proxies.client("127.0.0.1", {}) == "127.0.0.1"
    assert not TrustedProxies([])
    assert TrustedProxies([]).client("127.0.0.1", xff) == "127.0.0.1"
    with pytest.raises(ProxyConfigError, match="'nginx' is not an IP address or network"):
        TrustedProxies(["nginx"])


def test_the_middleware_rewrites_the_address_or_drops_a_forged_header(monkeypatch):
    seen = []

    def app(environ, start_response):
        seen.append({k: environ.get(k) for k in ("REMOTE_ADDR", "PROXY_ADDR", "HTTP_X_FORWARDED_FOR")})
        return []

    wsgi = TrustedProxies(["127.0.0.1"]).wsgi(app)
    wsgi({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}, None)
    wsgi({"REMOTE_ADDR": "192.0.2.9", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}, None)
    assert seen == [{"REMOTE_ADDR": "203.0.113.7", "PROXY_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"},
                    {"REMOTE_ADDR": "192.0.2.9", "PROXY_ADDR": None, "HTTP_X_FORWARDED_FOR": None}]
    monkeypatch.setenv("GENRE_MONITOR_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    assert configured_proxies() == ["127.0.0.1", "10.0.0.0/8"]
    assert configured_proxies(["192.0.2.1"]) == ["192.0.2.1"]


# --- the real server ----------------------------------------------------------------------------------
def _history_walls(data_dir) -> set[float]:
    with sqlite3.connect(data_dir / "history.sqlite") as db:
        return {round(w, 3) for (w,) in db.execute("SELECT wall FROM windows")}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT],
                         ids=lambda s: signal.Signals(s).name)
def test_a_websocket_dashboard_then_a_stop_signal_stops_in_order(tmp_path, sig):
    data = tmp_path / "data"
    with live_server(extra_args=["--data-dir", str(data), "--hop", "0.5"]) as srv:
        client, got = socketio.Client(reconnection=False), []
        client.on("prediction", got.append)
        client.connect(srv.url, transports=["websocket"], wait_timeout=10)
        try:
            assert client.transport() == "websocket"
            wait_until(lambda: len(got) >= 4, 120, 0.2, srv.log)
            t0 = time.monotonic()
            srv.proc.send_signal(sig)
            code = srv.proc.wait(15)
            took = time.monotonic() - t0
        finally:
            client.disconnect()
        log = srv.log()
    print(f"{signal.Signals(sig).name}: stopped in {took:.2f} s with a WebSocket dashboard connected")
    assert code == 0, log
    assert took < 10, log
    assert f"{signal.Signals(sig).name}: stopping" in log and "stopping the engine" in log, log
    assert "development server" not in log and "Traceback" not in log, log
    assert "leaked" not in log, log  # the loop let go of its native objects before the interpreter's exit
    received = {round(p["wall"], 3) for p in got}
    missing = received - _history_walls(data)
    assert not missing, f"{len(missing)} of {len(received)} windows sent to the dashboard are not in the history"


def _status(srv) -> dict:
    with urllib.request.urlopen(srv.url + "/api/sessions", timeout=10) as res:
        return json.loads(res.read())


def _dashboards(srv, forwarded: list[str]) -> tuple[list, list]:
    """A raw Engine.IO WebSocket per ``X-Forwarded-For`` value, connected to Socket.IO; (open, refused)."""
    url = srv.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    opened, refused = [], []
    for address in forwarded:
        try:
            ws = websocket.create_connection(url, timeout=10, header=[f"X-Forwarded-For: {address}"])
        except websocket.WebSocketBadStatusException as exc:
            refused.append((address, exc.status_code, exc.resp_body))
            continue
        assert ws.recv().startswith("0{")
        ws.send("40")
        replies = [ws.recv() for _ in range(2)]  # the CONNECT's answer, and the sources event around it
        assert any(r.startswith("40{") for r in replies), replies
        opened.append(ws)
    return opened, refused


@pytest.mark.slow
def test_the_session_cap_sees_clients_behind_a_trusted_proxy_and_ignores_forged_headers():
    n = MAX_SESSIONS_PER_CLIENT + 1
    audience = [f"198.51.100.{i}" for i in range(1, n + 1)]
    # Through a trusted proxy (here: 127.0.0.1): 33 dashboards from 33 addresses are all welcome.
    with app_server(trusted_proxies=["127.0.0.1"]) as srv:
        opened, refused = _dashboards(srv, audience)
        try:
            assert not refused and len(opened) == n
            assert _status(srv)["by_address"] == dict.fromkeys(audience, 1)
        finally:
            for ws in opened:
                ws.close()
    # The same headers from an address that is no configured proxy count for nothing.
    with app_server(trusted_proxies=["192.0.2.1"]) as srv:
        opened, refused = _dashboards(srv, audience)
        try:
            assert len(opened) == MAX_SESSIONS_PER_CLIENT and len(refused) == 1, refused
            assert refused[0][1] == 429 and b"127.0.0.1 already has 32" in refused[0][2], refused
            assert _status(srv)["by_address"] == {"127.0.0.1": MAX_SESSIONS_PER_CLIENT}
        finally:
            for ws in opened:
                ws.close()
        assert "Socket.IO handshake refused: too many connections: 127.0.0.1" in srv.log()


@pytest.mark.slow
def test_a_client_trickling_its_headers_is_cut_at_the_deadline():
    import socket

    with app_server() as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0, cut = time.monotonic(), None
        while time.monotonic() - t0 < http_server.HEADER_TIMEOUT + 10:
            time.sleep(1)
            try:
                slow.sendall(b"X-Slow: 1\r\n")  # a header line a second: never a whole request
                slow.settimeout(0.01)
                if slow.recv(1) == b"":
                    cut = time.monotonic() - t0
                    break
            except socket.timeout:
                continue
            except OSError:
                cut = time.monotonic() - t0
                break
        slow.close()
        with urllib.request.urlopen(srv.url + "/healthz", timeout=10) as res:  # the server serves on
            assert res.status == 200
    assert cut is not None and http_server.HEADER_TIMEOUT - 1 <= cut <= http_server.HEADER_TIMEOUT + 3, cut


@pytest.mark.slow
def test_a_bad_trusted_proxy_is_refused_before_anything_starts(tmp_path):
    import subprocess
    import sys

    from tests.support.web import ROOT

    out = subprocess.run([sys.executable, str(ROOT / "run.py"), "serve", "--data-dir", str(tmp_path),
                          "--trusted-proxy", "nginx"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2 and "error: trusted proxy 'nginx' is not an IP address" in out.stderr, out


def test_run_refuses_a_thread_other_than_the_main_one():
    errors, listener = [], http_server.listen("127.0.0.1", 0)

    def attempt():
        try:
            http_server.run(lambda e, s: [], listener)
        except http_server.ServerError as exc:
            errors.append(str(exc))

    t = threading.Thread(target=attempt)
    t.start()
    t.join(10)
    listener.close()
    assert errors and "main thread" in errors[0]
