"""The webhook sender against receivers that misbehave, on loopback: real sockets, real bytes.

Whatever a receiver answers (not HTTP, too many headers, a broken chunked body, a byte at a
time, a redirect to ftp://), the sender logs and counts the failure within its deadline and
delivers the next alert to a good receiver; the URL's credentials are never logged.
"""

import socket
import threading
import time

import pytest

from server.settings import Settings
from server.sinks.webhook import WebhookError, WebhookSender
from tests.support.wait import wait_until
from tests.support.webhook import Receiver

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MANY_HEADERS = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n"
BROKEN_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n"


class RawReceiver:
    """A loopback TCP server answering every connection with ``reply(conn)`` after reading the request."""

    def __init__(self, reply):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._reply = reply
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path="/hook", auth=""):
        return f"http://{auth}127.0.0.1:{self.port}{path}"

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self._reply(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def send_bytes(payload):
    return lambda conn: conn.sendall(payload)


def trickle(conn):
    for b in b"HTTP/1.1 200 OK\r\n":  # a byte every 0.4 s: no single read ever times out
        conn.sendall(bytes([b]))
        time.sleep(0.4)


@pytest.fixture
def good():
    r = Receiver()
    yield r
    r.close()


@pytest.mark.parametrize("reply, words", [
    (send_bytes(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), "bad answer"),
    (send_bytes(MANY_HEADERS), "bad answer"),
    (send_bytes(BROKEN_CHUNKED), "bad answer"),
    (trickle, "no complete answer within 1.5 s"),
    (send_bytes(b"HTTP/1.1 302 Found\r\nLocation: ftp://127.0.0.1/x\r\nContent-Length: 0\r\n\r\n"),
     "only http(s) redirects are followed"),
], ids=["not-http", "150-headers", "broken-chunked", "trickle", "redirect-to-ftp"])
def test_the_sender_survives_a_bad_receiver_and_delivers_the_next_alert(reply, words, good, caplog):
    bad = RawReceiver(reply)
    try:
        sender = WebhookSender(bad.url(auth="user:s3cret-pw@"), timeout=1.0, deadline=1.5, retries=0)
        started = time.monotonic()
        for i in range(3):
            assert sender.send({"n": i})
        wait_until(lambda: sender.failed == 3, 15, 0.05, message=lambda: sender.stats())
        assert time.monotonic() - started < 3 * 1.5 + 3  # each POST ended by its deadline
        stats = sender.stats()
        assert words in stats["last_error"], stats
        assert stats["sent"] == 0 and stats["dropped"] == 0
        # The thread is alive: a good receiver (the same sender, its URL swapped) gets the next one.
        sender.url = good.url
        sender.send({"n": "next"})
        wait_until(lambda: sender.sent == 1, 10, 0.05, message=lambda: sender.stats())
        assert good.bodies == [{"n": "next"}]
        sender.close()
    finally:
        bad.close()
    assert "s3cret-pw" not in caplog.text and "/hook" not in caplog.text
    assert "webhook http://127.0.0.1:" in caplog.text  # the failure is logged, by host


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(good, caplog):
    url = good.url.replace("http://", "http://alice:pa%20ss@")
    sender = WebhookSender(url)
    sender.send({"n": 1})
    wait_until(lambda: sender.sent == 1, 10, 0.05, message=lambda: sender.stats())
    sender.close()
    assert good.headers[0]["Authorization"] == "Basic YWxpY2U6cGEgc3M="  # alice:pa ss
    assert "pa%20ss" not in str(sender.stats()) and "alice" not in str(sender.stats())


def test_an_http_redirect_is_followed_with_the_same_post(good):
    hop = RawReceiver(send_bytes(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {good.url}\r\n"
                                 "Content-Length: 0\r\n\r\n".encode()))
    try:
        sender = WebhookSender(hop.url())
        sender.send({"n": 1})
        wait_until(lambda: sender.sent == 1, 10, 0.05, message=lambda: sender.stats())
        sender.close()
        assert good.bodies == [{"n": 1}]
    finally:
        hop.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1/a hook", "http://127.0.0.1/\nhook", "http://127.0.0.1:x/"])
def test_a_url_that_cannot_be_sent_to_is_refused_when_set(url, tmp_path, caplog):
    with pytest.raises(WebhookError):
        WebhookSender(url)
    path = tmp_path / "settings.json"
    path.write_text('{"webhook": %s, "retention_days": 7}' % __import__("json").dumps(url))
    settings = Settings(path)
    assert settings["webhook"] is None and settings["retention_days"] == 7.0
    assert any("'webhook'" in p for p in settings.problems), settings.problems


def test_a_trickling_receiver_costs_each_post_its_deadline_and_the_rest_is_counted(caplog):
    bad = RawReceiver(trickle)
    try:
        sender = WebhookSender(bad.url(), timeout=1.0, deadline=1.0, retries=0, max_queue=5)
        accepted = sum(sender.send({"n": i}) for i in range(200))
        wait_until(lambda: sender.failed >= 3, 15, 0.05, message=lambda: sender.stats())
        stats = sender.stats()
        assert stats["dropped"] == 200 - accepted >= 190, stats
        assert bad.connections >= 3  # one connection per POST: never wedged on the first
        assert "no complete answer within 1 s" in stats["last_error"]
        assert "queue full" in caplog.text
        sender.close(wait=0.1)
    finally:
        bad.close()


def test_the_counts_reach_the_sources_payload(good, tmp_path):
    from server.engine import Engine
    from server.sinks.webhook import AlertWebhook
    from server.web.app import create_app

    engine = Engine()
    sink = AlertWebhook(WebhookSender(good.url))
    engine.add_sink(sink)
    sink.on_alert({"n": 1})
    wait_until(lambda: sink.sender.sent == 1, 10, 0.05)
    app, _ = create_app(engine, upload_dir=str(tmp_path / "uploads"))
    webhook = app.test_client().get("/api/sources").json["webhook"]
    assert webhook["sent"] == 1 and webhook["failed"] == 0 and webhook["dropped"] == 0
    assert webhook["url"].endswith("/…") and "/hook" not in webhook["url"]
    sink.close()
