"""Safe exposure: access token, own-origin Socket.IO, DNS-rebinding guard, media folders, uploads.

Live tests run the real ``serve()`` in a subprocess (an Engine that loads no model) and talk
to it over HTTP and a real Socket.IO client; the rest use Flask's and Flask-SocketIO's test clients.
"""

import io
import json
import os
import struct
import urllib.error
import urllib.request
import zipfile

import pytest
import socketio
import websocket

from server.engine import Engine
from server.web.app import create_app
from server.web.auth import COOKIE, configured_token, is_loopback, resolve_token
from tests.support.web import app_server, write_wav

TOKEN = "test-token-0123456789abcdef"


def http(url, headers=None, method="GET", data=None):
    """(status, headers, body) without raising on 4xx."""
    req = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers, res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


def sio_connect(url, **kwargs):
    """A connected python-socketio client, or the ConnectionError's message."""
    client = socketio.Client(reconnection=False)
    got, refused = [], []
    client.on("sources", got.append)
    client.on("connect_error", refused.append)
    try:
        client.connect(url, transports=["websocket"], wait_timeout=10, **kwargs)
    except socketio.exceptions.ConnectionError as exc:
        return None, f"{exc} {refused}"
    return client, got


# --- token logic ------------------------------------------------------------------------------------------
def test_token_needed_off_loopback_only():
    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("::")
    assert resolve_token("127.0.0.1") is None
    assert len(resolve_token("0.0.0.0")) >= 16 and resolve_token("0.0.0.0") != resolve_token("0.0.0.0")
    assert resolve_token("127.0.0.1", require_token=True)
    assert resolve_token("0.0.0.0", token=TOKEN) == TOKEN
    with pytest.raises(ValueError, match="at least 16"):
        resolve_token("0.0.0.0", token="short")


def test_token_precedence_is_flag_then_environment_then_settings(monkeypatch):
    monkeypatch.delenv("GENRE_MONITOR_TOKEN", raising=False)
    assert configured_token() is None and configured_token(saved="s" * 16) == "s" * 16
    monkeypatch.setenv("GENRE_MONITOR_TOKEN", "e" * 16)
    assert configured_token(saved="s" * 16) == "e" * 16
    assert configured_token("f" * 16, saved="s" * 16) == "f" * 16


@pytest.fixture(scope="module")
def exposed():
    """The real server bound to every address: it must demand the token it printed."""
    with app_server(host="0.0.0.0") as srv:
        assert srv.token, srv.log()
        yield srv


def test_exposed_server_refuses_page_and_rest_without_token(exposed):
    assert http(exposed.url + "/healthz")[0] == 200  # liveness stays public
    status, _, body = http(exposed.url + "/")
    assert status == 401 and "token" in body
    status, headers, body = http(exposed.url + "/api/sources")
    assert status == 401 and headers["Content-Type"].startswith("application/json") and "token" in json.loads(body)["error"]
    assert http(exposed.url + "/?token=wrong-token")[0] == 401
    assert http(exposed.url + "/api/sources", {"Authorization": "Bearer wrong-token"})[0] == 401
    assert http(exposed.url + "/api/sources", {"Cookie": f"{COOKIE}=wrong-token"})[0] == 401
    assert http(exposed.url + "/static/js/main.js")[0] == 401


def test_exposed_server_token_in_query_becomes_cookie(exposed):
    status, headers, body = http(exposed.url + f"/?token={exposed.token}")
    assert status == 200 and 'id="probs-plot"' in body
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={exposed.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert headers["Referrer-Policy"] == "no-referrer"
    jar = {"Cookie": f"{COOKIE}={exposed.token}"}
    assert http(exposed.url + "/", jar)[0] == 200
    status, _, body = http(exposed.url + "/api/sources", jar)
    assert status == 200 and "sources" in json.loads(body)
    status, _, body = http(exposed.url + "/api/sources", {"Authorization": f"Bearer {exposed.token}"})
    assert status == 200 and "sources" in json.loads(body)


def test_exposed_server_socketio_needs_token(exposed):
    client, why = sio_connect(exposed.url)
    assert client is None and "token" in why
    client, why = sio_connect(exposed.url, auth={"token": "wrong-token"})
    assert client is None and "wrong" in why
    for kwargs in ({"auth": {"token": exposed.token}}, {"headers": {"Cookie": f"{COOKIE}={exposed.token}"}}):
        client, got = sio_connect(exposed.url, **kwargs)
        assert client is not None, got
        try:
            assert client.call("watch", {"sources": "all"}, timeout=10) == {"ok": True, "sources": []}
        finally:
            client.disconnect()


def raw_socketio(url: str, origin: str, token: str | None = None) -> str:
    """Speak Engine.IO/Socket.IO over a WebSocket with an exact Origin; the server's CONNECT reply, or why not."""
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    try:
        ws = websocket.create_connection(ws_url, origin=origin, timeout=10)
    except websocket.WebSocketBadStatusException as exc:
        return f"handshake refused: {exc.status_code}"
    try:
        assert ws.recv().startswith("0{")  # Engine.IO open
        ws.send("40" + (json.dumps({"token": token}) if token else ""))
        for _ in range(5):  # the connect handler's own events may come before the reply
            reply = ws.recv()
            if reply.startswith(("40", "44")):
                return reply  # 40{"sid": …} connected, 44{"message": …} refused
        return reply
    finally:
        ws.close()


def test_exposed_server_socketio_refuses_foreign_origin(exposed):
    assert raw_socketio(exposed.url, exposed.url, exposed.token).startswith("40{")
    assert raw_socketio(exposed.url, exposed.url, "wrong-token").startswith("44")
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null", exposed.url + ".evil.example"):
        assert raw_socketio(exposed.url, origin, exposed.token) == "handshake refused: 400", origin
    # The long-polling transport checks the origin too.
    status, _, _ = http(exposed.url + "/socket.io/?EIO=4&transport=polling", {"Origin": "http://evil.example"})
    assert status == 400


@pytest.fixture(scope="module")
def local():
    """The real server on loopback with no token: only the DNS-rebinding and origin guards apply."""
    with app_server(host="127.0.0.1") as srv:
        assert srv.token is None, srv.log()
        yield srv


def test_loopback_server_needs_no_token_but_checks_host_and_origin(local):
    assert http(local.url + "/api/sources")[0] == 200
    assert http(local.url + "/", {"Host": "localhost"})[0] == 200
    # DNS rebinding: a page on evil.example whose name now points to 127.0.0.1.
    status, _, body = http(local.url + "/api/sources", {"Host": "evil.example:5000"})
    assert status == 403 and "Host" in json.loads(body)["error"]
    status, _, body = http(local.url + "/api/sources", {"Origin": "http://evil.example", "Content-Type":
                                                        "application/json"}, "POST", b'{"kind": "demo"}')
    assert status == 403 and "Cross-origin" in json.loads(body)["error"]
    assert raw_socketio(local.url, "http://evil.example") == "handshake refused: 400"
    assert raw_socketio(local.url, local.url).startswith("40{")


def test_required_token_on_loopback_through_test_clients(tmp_path):
    engine = Engine()
    try:
        app, sio = create_app(engine, upload_dir=str(tmp_path / "up"), token=TOKEN)
        client = app.test_client()
        assert client.get("/").status_code == 401
        assert client.get("/api/models").status_code == 401
        res = client.get(f"/?token={TOKEN}")
        assert res.status_code == 200
        assert client.get("/api/monitoring").status_code == 200  # the cookie set above
        other = app.test_client()
        assert other.get("/api/monitoring", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert other.get("/api/monitoring", headers={"Authorization": "Bearer x" + TOKEN}).status_code == 401
        assert not sio.test_client(app).is_connected()
        assert not sio.test_client(app, auth={"token": TOKEN[:-1]}).is_connected()
        sc = sio.test_client(app, auth={"token": TOKEN})
        assert sc.is_connected()
        sc.disconnect()
        generated = create_app(engine, upload_dir=str(tmp_path / "up2"), require_token=True)[0]
        assert generated.test_client().get("/api/sources").status_code == 401
        assert len(generated.extensions["genre_guard"].token) >= 16
    finally:
        engine.shutdown()


# --- media folders ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine():
    eng = Engine()
    yield eng
    eng.shutdown()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media-root")
    music, outside = root / "music", root / "private"
    music.mkdir()
    outside.mkdir()
    write_wav(music / "song.wav", seconds=4.0)
    write_wav(outside / "secret.wav", seconds=4.0)
    (music / "sub").mkdir()
    os.symlink(outside / "secret.wav", music / "escape.wav")
    os.symlink(outside, music / "escape-dir")
    os.symlink("/dev/zero", music / "zero.wav")
    os.mkfifo(music / "pipe.wav")
    return music, outside


@pytest.fixture(scope="module")
def web(engine, media, tmp_path_factory):
    app, sio = create_app(engine, upload_dir=str(tmp_path_factory.mktemp("uploads")), max_upload_mb=1,
                          media_dirs=[str(media[0])])
    return app, sio


def start(web, spec):
    """(REST answer, Socket.IO ack) for one spec; stops anything that started."""
    app, sio = web
    res = app.test_client().post("/api/sources", json=spec)
    sc = sio.test_client(app)
    ack = sc.emit("start_source", spec, callback=True)
    for answer in (res.json, ack):
        if answer.get("ok"):
            app.test_client().delete(f"/api/sources/{answer['id']}")
    sc.disconnect()
    return res, ack


@pytest.mark.parametrize("path, words", [
    ("../private/secret.wav", "outside"),
    ("{music}/../private/secret.wav", "outside"),
    ("{outside}/secret.wav", "outside"),
    ("/etc/passwd", "outside"),
    ("escape.wav", "outside"),            # symlink inside pointing outside
    ("escape-dir/secret.wav", "outside"),  # symlinked folder
    ("zero.wav", "outside"),              # symlink to /dev/zero
    ("/dev/zero", "outside"),
    ("pipe.wav", "regular file"),          # a FIFO would block the reader forever
    ("sub", "regular file"),
    ("missing.wav", "no such file"),
])
def test_paths_outside_media_or_not_regular_files_refused(web, media, path, words):
    path = path.format(music=media[0], outside=media[1])
    res, ack = start(web, {"kind": "file", "path": path})
    assert res.status_code == 400 and words in res.json["error"], res.json
    assert ack["ok"] is False and words in ack["error"], ack
    url_res, _ = start(web, {"kind": "stream", "url": "file://" + (path if path.startswith("/") else f"{media[0]}/{path}")})
    assert url_res.status_code == 400, url_res.json
    assert "Traceback" not in res.get_data(as_text=True)


def test_file_inside_media_folder_accepted(web, media):
    for path in ("song.wav", str(media[0] / "song.wav"), str(media[0] / "sub" / ".." / "song.wav"),
                 f"file://{media[0]}/song.wav"):
        spec = {"kind": "stream", "url": path} if path.startswith("file:") else {"kind": "file", "path": path}
        res, ack = start(web, spec)
        assert res.status_code == 200, res.json
        assert ack["ok"] is True, ack


def test_no_media_folder_means_no_server_paths(engine, media, tmp_path):
    app, sio = create_app(engine, upload_dir=str(tmp_path / "up"))
    res, ack = start((app, sio), {"kind": "file", "path": str(media[0] / "song.wav")})
    assert res.status_code == 400 and "--media-dir" in res.json["error"]
    assert ack["ok"] is False and "--media-dir" in ack["error"]
    res, _ = start((app, sio), {"kind": "demo"})
    assert res.status_code == 200, res.json  # the demo needs no media folder


@pytest.mark.parametrize("url, words", [
    ("ftp://radio.example/live", "http"),
    ("gopher://x.example/", "http"),
    ("-i /etc/passwd", "http"),
    ("http://", "host"),
])
def test_stream_urls_limited_to_http(web, url, words):
    res, ack = start(web, {"kind": "stream", "url": url})
    assert res.status_code == 400 and words in res.json["error"].lower(), res.json
    assert ack["ok"] is False


# --- uploads ----------------------------------------------------------------------------------------------
def _upload(client, data: bytes, name: str):
    return client.post("/api/upload", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not audio " * 100)
    return buf.getvalue()


def _wav_header(data_bytes: int, sr: int = 44100) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


@pytest.mark.parametrize("name, make", [
    ("page.mp3", lambda tmp: b"<!doctype html><html><body><script>alert(1)</script></body></html>\n" * 40),
    ("archive.wav", lambda tmp: _zip_bytes()),
    ("truncated.wav", lambda tmp: open(write_wav(tmp / "t.wav", 1.0), "rb").read()[:30]),
    ("header-only.wav", lambda tmp: _wav_header(0xFFFFFF00)),  # claims 4 GB, holds nothing
    ("empty.flac", lambda tmp: b""),
])
def test_uploads_that_are_not_audio_are_refused_and_removed(web, tmp_path, name, make):
    app, _ = web
    upload_dir = app.extensions["genre_uploads"].dir
    before = set(os.listdir(upload_dir))
    res = _upload(app.test_client(), make(tmp_path), name)
    assert res.status_code == 400 and res.is_json, res.data[:200]
    assert name in res.json["error"] and "Traceback" not in res.json["error"]
    assert set(os.listdir(upload_dir)) == before, "nothing of a rejected upload stays on disk"


def test_oversize_upload_is_413_json(web):
    app, _ = web
    upload_dir = app.extensions["genre_uploads"].dir
    before = set(os.listdir(upload_dir))
    res = _upload(app.test_client(), b"\0" * (1024 * 1024 + 1), "big.wav")
    assert res.status_code == 413 and "1 MB" in res.json["error"]
    assert set(os.listdir(upload_dir)) == before


def test_upload_ids_resolve_only_inside_the_upload_folder(web, tmp_path):
    app, _ = web
    client = app.test_client()
    with open(write_wav(tmp_path / "ok.wav", 2.0), "rb") as f:
        item = client.post("/api/upload", data={"file": (f, "ok.wav")}, content_type="multipart/form-data").json
    assert os.path.dirname(item["path"]) == str(app.extensions["genre_uploads"].dir)
    res, ack = start(web, {"kind": "upload", "upload_id": item["upload_id"]})
    assert res.status_code == 200 and ack["ok"] is True
    res, ack = start(web, {"kind": "file", "path": item["path"]})  # the upload folder counts as readable
    assert res.status_code == 200, res.json
    for bad in ("../../etc/passwd", "/etc/passwd", item["upload_id"] + "/..", "0" * 16):
        res, ack = start(web, {"kind": "upload", "upload_id": bad})
        assert res.status_code == 400 and "upload" in res.json["error"].lower(), res.json
        assert ack["ok"] is False


# --- errors never leak internals -------------------------------------------------------------------------
def test_unknown_fields_and_ranges_get_clear_messages(web):
    app, sio = web
    client = app.test_client()
    res = client.post("/api/sources", json={"kind": "demo", "colour": "red"})
    assert res.status_code == 400 and "unknown field" in res.json["error"] and "colour" in res.json["error"]
    for hop in (0.1, 3.5, float("inf"), "1"):
        res = client.post("/api/sources", json={"kind": "demo", "hop": hop})
        assert res.status_code == 400 and "hop" in res.json["error"], res.json
    assert client.get("/api/sources?debug=1").status_code == 400
    sc = sio.test_client(app)
    ack = sc.emit("stop_source", {"id": "x", "force": True}, callback=True)
    assert ack == {"ok": False, "error": ack["error"]} and "force" in ack["error"]
    ack = sc.emit("set_monitoring", {"smoothing": {"kind": "ema", "tau": 1e9}}, callback=True)
    assert ack["ok"] is False and "tau" in ack["error"]
    sc.disconnect()


# --- the dashboard in real headless Chromium behind a token --------------------------------------------
def test_browser_opens_token_link_and_goes_live(exposed):
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.support.web import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{exposed.url}/?token={exposed.token}")
            page.wait_for_function("document.querySelector('#conn span').textContent === 'live'", timeout=30_000)
            assert "token" not in page.url, "the token leaves the address bar"
            cookies = {c["name"]: c for c in page.context.cookies()}
            assert cookies[COOKIE]["httpOnly"] and cookies[COOKIE]["sameSite"] == "Strict"
            assert page.evaluate("document.cookie") == "", "scripts cannot read the token"
            # Without the cookie, the same page is refused.
            fresh = browser.new_page()
            assert fresh.goto(exposed.url + "/").status == 401
        finally:
            browser.close()


def test_a_server_fault_answers_internal_error_with_a_log_id_only(tmp_path, caplog):
    import re
    import time

    from server.sinks.history import HistoryStore
    from tests.support.store import prediction

    store = HistoryStore(tmp_path / "h.db")
    store.on_prediction(prediction("radio-1", time.time() - 5))
    assert store.flush()
    engine = Engine()
    try:
        app, _ = create_app(engine, upload_dir=str(tmp_path / "up"), store=store)
        store.close()
        # The history file is destroyed under the running server: a real fault, not a bad request.
        for name in os.listdir(tmp_path):
            if name.startswith("h.db"):
                os.remove(tmp_path / name)
        (tmp_path / "h.db").write_bytes(b"not a database " * 500)
        res = app.test_client().get("/api/history?source=radio-1")
        assert res.status_code == 500 and res.is_json
        found = re.fullmatch(r"internal error \(log id ([0-9a-f]{8})\)", res.json["error"])
        assert found, res.json
        assert "Error" not in res.get_data(as_text=True) and "Traceback" not in res.get_data(as_text=True)
        assert found.group(1) in caplog.text and "DatabaseError" in caplog.text, "the log keeps the details"
    finally:
        engine.shutdown()
