"""Webhook sender against a real HTTP server on 127.0.0.1."""

import socket

import pytest

from server.sinks.webhook import WebhookError, WebhookSender
from tests.support.wait import wait_until
from tests.support.webhook import Receiver

WAIT_S = 10.0  # generous: these tests check correctness, not speed


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_posts_json_to_a_local_server(receiver):
    sender = WebhookSender(receiver.url, timeout=5)
    alert = {"rule": 0, "type": "silence", "state": "firing", "message": "silence for 10 s", "t": 13.0,
             "wall": 1763800013.0, "source": "radio"}
    assert sender.send(alert) is True
    assert sender.send({"n": 2}) is True
    wait_until(lambda: sender.sent == 2, WAIT_S, 0.01)
    sender.close()
    assert receiver.bodies == [alert, {"n": 2}]
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert sender.stats()["failed"] == sender.stats()["dropped"] == 0


def test_unreachable_url_counts_failures_and_never_blocks():
    sender = WebhookSender(f"http://127.0.0.1:{free_port()}/hook", timeout=2, backoff=0.05)
    results = [sender.send({"n": i}) for i in range(3)]  # returns at once, whatever happens later
    assert results == [True] * 3
    wait_until(lambda: sender.failed == 3, WAIT_S, 0.01)
    stats = sender.stats()
    assert stats["sent"] == 0 and stats["dropped"] == 0 and "cannot reach" in stats["last_error"]
    sender.close()


def test_http_errors_are_retried_once_then_counted():
    receiver = Receiver(status=500)
    try:
        sender = WebhookSender(receiver.url, backoff=0.05)
        sender.send({"n": 1})
        wait_until(lambda: sender.failed == 1, WAIT_S, 0.01)
        assert len(receiver.bodies) == 2  # the first try and one retry
        assert sender.last_error.startswith("HTTP 500")
        sender.close()
    finally:
        receiver.close()


def test_a_full_queue_drops_and_counts(receiver):
    receiver.gate.clear()  # the receiver hangs: the sender thread is stuck on the first POST
    sender = WebhookSender(receiver.url, timeout=10, max_queue=3)
    sender.send({"n": 0})
    assert receiver.arrived.wait(10)
    accepted = [sender.send({"n": i}) for i in range(1, 7)]
    assert accepted == [True, True, True, False, False, False]
    assert sender.dropped == 3
    receiver.gate.set()
    wait_until(lambda: sender.sent == 4, WAIT_S, 0.01)
    sender.close()
    assert [b["n"] for b in receiver.bodies] == [0, 1, 2, 3]
    assert sender.send({"n": 9}) is False and sender.dropped == 4  # closed


@pytest.mark.parametrize("url, words", [
    ("ftp://example.com/hook", "must start with http:// or https://"),
    ("file:///etc/passwd", "must start with http:// or https://"),
    ("http:///hook", "no host name"),
    ("", "non-empty string"),
    (None, "non-empty string"),
])
def test_bad_urls_are_rejected(url, words):
    with pytest.raises(WebhookError) as err:
        WebhookSender(url)
    assert words in str(err.value)
    assert isinstance(err.value, ValueError)


# --- the sinks a process builds from its settings ------------------------------------------------------
def test_sinks_from_settings_post_alerts_and_record_them(receiver, tmp_path):
    from server.settings import Settings
    from server.sinks.from_settings import build_sinks

    settings = Settings(None)
    settings.update(webhook=receiver.url)
    sinks = build_sinks(settings, tmp_path / "history.sqlite")
    try:
        assert sinks.all() == [sinks.history, sinks.webhook]
        alert = {"rule": 0, "type": "silence", "state": "firing", "message": "silence for 10 s", "t": 13.0,
                 "wall": 1763800013.0, "source": "radio"}
        for sink in sinks.all():
            sink.on_alert(alert)
        wait_until(lambda: receiver.bodies, WAIT_S, 0.01)
        assert receiver.bodies == [alert]
        assert sinks.history.flush()
        assert [a["message"] for a in sinks.history.alerts("radio")] == ["silence for 10 s"]
    finally:
        sinks.close()


def test_sinks_left_out_are_logged_and_the_rest_still_built(tmp_path, caplog):
    from server.settings import Settings
    from server.sinks.from_settings import build_sinks

    settings = Settings(None)
    settings.update(webhook="ftp://example.com/hook")
    with caplog.at_level("ERROR"):
        sinks = build_sinks(settings, tmp_path)  # a directory: no history there either
    assert sinks.all() == [] and sinks.history is None and sinks.webhook is None
    assert "webhook disabled" in caplog.text and "history disabled" in caplog.text
    assert build_sinks(Settings(None)).all() == []  # nothing configured: nothing built
