"""History lists read in pages: every row once, in order, with a limit everywhere; a real server
streams them and holds no read transaction while a client stalls on an export."""

import json
import os
import socket
import sqlite3
import time
import urllib.error
import urllib.request

import pytest

from server.sinks.history import HistoryStore
from tests.support.store import fill_radio_history, prediction
from tests.support.web import app_server

T0 = 1_700_000_000.0


@pytest.fixture
def store(tmp_path):
    s = HistoryStore(tmp_path / "history.db", retention_days=1e6)  # keep 2023 rows
    yield s
    s.close()


def test_pages_keep_every_row_once_in_order_across_equal_times(store):
    # Ten windows share each second: with pages of 3 rows, equal times straddle every page boundary.
    walls = [T0 + i // 10 for i in range(95)]
    for i, wall in enumerate(walls):
        store.on_prediction(prediction("a", wall, t=float(i)))
        store.on_alert({"source": "a", "rule": i, "type": "silence", "message": "quiet", "t": float(i),
                        "wall": wall, "state": "firing"})
    for i in range(10):
        store.on_segment({"source": "a", "genre": "jazz", "start": i * 10.0, "end": i * 10.0 + 9,
                          "start_wall": T0 + i * 10, "end_wall": T0 + i * 10 + 9, "mean_confidence": 0.7,
                          "windows": 10, "open": False})
    store.flush()
    whole = store.windows("a", limit=1000)
    alerts = store.alerts("a")
    segments = store.segments("a")
    assert sorted(w["t"] for w in whole) == [float(i) for i in range(95)]
    assert sorted(a["rule"] for a in alerts) == list(range(95)) and len(segments) == 10
    store.reader.page_rows = 3
    paged = store.windows("a", limit=1000)
    assert sorted(w["t"] for w in paged) == [float(i) for i in range(95)]
    assert [w["wall"] for w in paged] == walls
    assert sorted(a["rule"] for a in store.alerts("a")) == list(range(95))
    assert store.segments("a") == segments
    for limit in (1, 3, 4, 10, 11, 94):
        got = store.windows("a", limit=limit)
        assert len(got) == limit and [w["wall"] for w in got] == walls[:limit]
        assert len({w["t"] for w in got}) == limit  # none repeated
        assert [a["wall"] for a in store.alerts("a", limit=limit)] == walls[:limit]
    assert [s["start_wall"] for s in store.segments("a", limit=4)] == [T0 + i * 10 for i in range(4)]
    assert len(store.windows("a", T0 + 2, T0 + 3.5, limit=1000)) == 20


def _get(url: str, timeout: float = 60.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.headers, r.read()


@pytest.mark.slow
def test_a_real_server_streams_every_list_with_a_limit(tmp_path):
    path = tmp_path / "history.sqlite"
    n = 60000  # ~20 MB of JSON: more than the socket buffers take, so the export really waits
    fill_radio_history(path, n, T0)
    q = f"source=radio&from={T0}&to={T0 + n}"
    with app_server(store=str(path)) as srv:
        headers, body = _get(f"{srv.url}/api/history?{q}&limit=100000")
        rows = json.loads(body)
        assert headers.get("Content-Length") is None  # streamed, not built whole
        assert len(rows) == n and [r["wall"] for r in rows] == [T0 + i * 0.5 for i in range(n)]
        assert len(json.loads(_get(f"{srv.url}/api/history?{q}&limit=7")[1])) == 7
        segs = json.loads(_get(f"{srv.url}/api/segments?{q}")[1])
        assert len(segs) == n // 100
        assert [s["start_wall"] for s in json.loads(_get(f"{srv.url}/api/segments?{q}&limit=5")[1])] == [
            T0 + i * 50 for i in range(5)]
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"{srv.url}/api/alerts?{q}&limit=100001")
        assert refused.value.code == 400 and "limit" in json.loads(refused.value.read())["error"]


@pytest.mark.slow
def test_a_stalled_export_lets_the_log_be_checkpointed(tmp_path):
    path = tmp_path / "history.sqlite"
    n = 60000
    fill_radio_history(path, n, T0)
    with app_server(store=str(path)) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.sendall(f"GET /api/export/windows.json?source=radio&from={T0}&to={T0 + n} HTTP/1.1\r\n"
                       f"Host: 127.0.0.1\r\n\r\n".encode())
        try:
            assert client.recv(64).startswith(b"HTTP/1.1 200")
            time.sleep(3.0)  # the export is now blocked on the client that does not read
            # The live path answers meanwhile.
            assert json.loads(_get(f"{srv.url}/api/history/status", timeout=10)[1])["enabled"] is True
            conn = sqlite3.connect(path, timeout=10)
            conn.execute("INSERT INTO alerts(source, wall, state) VALUES ('probe', 1, 'firing')")
            conn.commit()
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            conn.close()
            assert busy == 0, "a reader still holds a snapshot of the log"
            assert os.path.getsize(f"{path}-wal") == 0
        finally:
            client.close()
