"""History REST API and exports on a real HistoryStore, through Flask's test client."""

import csv
import io
import json

import pytest

from server.engine import Engine
from server.sinks.history import HistoryStore
from server.web.app import create_app
from tests.support.store import LABELS, fill_history

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = HistoryStore(tmp_path_factory.mktemp("history") / "history.db", retention_days=1e6)  # keep 2023 rows
    fill_history(s, T0)
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(store, tmp_path_factory):
    engine = Engine()  # not started: the history API needs no model
    app, _ = create_app(engine, upload_dir=str(tmp_path_factory.mktemp("uploads")), store=store)
    yield app.test_client()
    engine.shutdown()


RANGE = f"source=radio-1&from={T0}&to={T0 + 100}"


def test_history_lists_windows(client):
    r = client.get(f"/api/history?{RANGE}")
    assert r.status_code == 200
    rows = r.get_json()
    assert len(rows) == 30 and rows[0]["wall"] == T0 and rows[-1]["top"] == "rock"
    assert set(rows[0]) == {"wall", "t", "model", "top", "confidence", "uncertain", "probs", "smoothed", "level_db",
                            "content"}
    assert list(rows[0]["probs"]) == LABELS and rows[0]["smoothed"]["jazz"] == 0.7
    assert len(client.get(f"/api/history?{RANGE}&limit=5").get_json()) == 5
    assert client.get(f"/api/history?source=radio-1&from={T0 + 10}&to={T0 + 12}").get_json()[0]["wall"] == T0 + 10


def test_history_defaults_to_the_last_day(client):
    assert client.get("/api/history?source=radio-1").get_json() == []  # T0 is long ago
    assert len(client.get("/api/history?source=recent").get_json()) == 1


def test_segments_alerts_summary(client):
    segs = client.get(f"/api/segments?{RANGE}").get_json()
    assert [(s["genre"], s["open"], s["windows"]) for s in segs] == [("jazz", False, 20), ("rock", True, 10)]
    alerts = client.get(f"/api/alerts?{RANGE}").get_json()
    assert alerts == [{"source": "radio-1", "rule": 0, "type": "unexpected_genre", "message": "rock dominates",
                       "t": 25.0, "wall": T0 + 25, "state": "firing"}]
    summary = client.get(f"/api/summary?{RANGE}").get_json()
    assert summary["genres"] == {"jazz": 20.0, "rock": 10.0} and summary["total_seconds"] == 30.0
    assert summary["content"] == {"music": 30.0, "speech": 0.0, "silence": 0.0, "noise": 0.0}
    assert summary["source"] == "radio-1" and summary["from"] == T0 and summary["windows"] == 30


def test_history_sources(client):
    sources = {s["id"]: s for s in client.get("/api/history/sources").get_json()["sources"]}
    assert set(sources) == {"radio-1", "recent"}
    assert sources["radio-1"]["kind"] == "stream" and sources["radio-1"]["first_seen"] == T0


def test_export_windows_csv(client):
    r = client.get(f"/api/export/windows.csv?{RANGE}")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and 'genre-windows_radio-1_' in disposition
    assert disposition.endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert len(rows) == 30
    assert [k for k in rows[0] if k.startswith("prob_")] == [f"prob_{lab}" for lab in LABELS]
    first = rows[0]
    assert float(first["wall"]) == T0 and first["top"] == "jazz" and first["uncertain"] == "0" and first["content"] == "music"
    assert first["time_utc"].startswith("2023-11-14T22:13:20")
    assert abs(sum(float(first[f"prob_{lab}"]) for lab in LABELS) - 1) < 1e-4
    assert float(first["smoothed_jazz"]) == 0.7 and float(first["level_db"]) == -20.0


def test_export_windows_json_matches_history(client):
    r = client.get(f"/api/export/windows.json?{RANGE}")
    assert r.status_code == 200 and r.headers["Content-Disposition"].endswith('.json"')
    assert json.loads(r.get_data(as_text=True)) == client.get(f"/api/history?{RANGE}").get_json()


def test_export_segments(client):
    r = client.get(f"/api/export/segments.csv?{RANGE}")
    assert r.status_code == 200 and "genre-segments_radio-1_" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [(x["genre"], x["duration_s"], x["open"]) for x in rows] == [("jazz", "20.0", "0"), ("rock", "9.0", "1")]
    data = json.loads(client.get(f"/api/export/segments.json?{RANGE}").get_data(as_text=True))
    assert data == client.get(f"/api/segments?{RANGE}").get_json()


def test_empty_range_exports_header_only(client):
    r = client.get(f"/api/export/windows.csv?source=radio-1&from={T0 + 1000}&to={T0 + 2000}")
    assert r.get_data(as_text=True).strip() == "wall,time_utc,t,model,content,top,confidence,uncertain,level_db"
    assert json.loads(client.get(f"/api/export/windows.json?source=radio-1&from={T0 + 1000}&to={T0 + 2000}")
                      .get_data(as_text=True)) == []


@pytest.mark.parametrize("query, status, words", [
    ("/api/history", 400, "source"),
    ("/api/history?source=", 400, "source"),
    ("/api/history?source=radio-1&from=yesterday", 400, "'from'"),
    ("/api/history?source=radio-1&to=nan", 400, "finite"),
    (f"/api/history?source=radio-1&from={T0 + 10}&to={T0}", 400, "after"),
    ("/api/history?source=radio-1&limit=0", 400, "limit"),
    ("/api/history?source=radio-1&limit=100001", 400, "limit"),
    ("/api/history?source=radio-1&limit=ten", 400, "limit"),
    ("/api/history?source=radio-1&limit=" + "9" * 400, 400, "'limit'"),  # past float range: no OverflowError
    ("/api/history?source=radio-1&from=" + "9" * 400, 400, "'from'"),
    ("/api/history?source=nope", 404, "nope"),
    ("/api/segments?source=nope", 404, "nope"),
    ("/api/summary", 400, "source"),
    ("/api/alerts?source=radio-1&from=1e400", 400, "finite"),
    ("/api/export/windows.csv?source=nope", 404, "nope"),
    ("/api/export/segments.json?source=radio-1&from=x", 400, "'from'"),
    ("/api/export/windows.xml?source=radio-1", 404, "csv"),
])
def test_bad_queries_get_json_errors(client, query, status, words):
    r = client.get(query)
    assert r.status_code == status and r.is_json
    assert words in r.get_json()["error"] and "Traceback" not in r.get_data(as_text=True)


def test_without_a_store_history_is_disabled(tmp_path):
    engine = Engine()
    app, _ = create_app(engine, upload_dir=str(tmp_path))
    r = app.test_client().get("/api/history?source=a")
    assert r.status_code == 503 and "not enabled" in r.get_json()["error"]
    engine.shutdown()


def test_the_heap_is_trimmed_when_the_last_list_ends(client):
    import platform

    from server import heap

    before = heap.trims()
    r = client.get(f"/api/history?{RANGE}", buffered=False)
    first = next(r.response)  # the list is being sent: nothing trimmed yet
    assert first and heap.trims() == before
    rest = b"".join(r.response)
    r.close()
    assert len(json.loads(first + rest)) == 30
    assert heap.trims() == before + (platform.libc_ver()[0] == "glibc")
