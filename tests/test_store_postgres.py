"""HistoryStore on a real PostgreSQL server: the SQLite store's behaviour, plus several writer processes.

The backend-neutral checks of tests/test_store.py and tests/test_history_api.py are imported and run
here again with their ``store``/``client`` fixtures served by PostgreSQL.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from server.engine import Engine
from server.sinks.history import SCHEMA_VERSION, HistoryStore, StoreError, open_store
from server.web.app import create_app
from tests.support.postgres import create_database
from tests.support.store import LABELS, fill_for_retention, fill_history, flood, kill_writer_and_check, prediction
from tests.test_history_api import (T0, test_bad_queries_get_json_errors,
                                    test_empty_range_exports_header_only, test_export_segments,
                                    test_export_windows_csv, test_export_windows_json_matches_history,
                                    test_history_defaults_to_the_last_day, test_history_lists_windows,
                                    test_history_sources, test_segments_alerts_summary)
from tests.test_store import (test_alerts_stored,
                              test_bad_payloads_are_counted_not_raised, test_batched_writes_visible_after_flush,
                              test_segments_upsert_and_close, test_smoothed_and_level_stored,
                              test_sources_event_upserts, test_summary_adds_up, test_talk_is_counted_apart_from_genres)

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

ROOT = Path(__file__).resolve().parents[1]
KEEP = 1e6


@pytest.fixture
def store(postgres_url):
    s = open_store(postgres_url, retention_days=KEEP)
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(postgres_server, tmp_path_factory):
    """The history API on PostgreSQL, filled like tests/test_history_api.py's SQLite one."""
    s = open_store(create_database(postgres_server), retention_days=KEEP)
    fill_history(s, T0)
    engine = Engine()  # not started: the history API needs no model
    app, _ = create_app(engine, upload_dir=str(tmp_path_factory.mktemp("uploads")), store=s)
    yield app.test_client()
    engine.shutdown()
    s.close()


def _connect(url):
    import psycopg

    return psycopg.connect(url, autocommit=True)


def test_schema_version_tables_and_indexes(store, postgres_url):
    store.on_prediction(prediction("a", 1000.0))
    assert store.flush() and store.backend == "postgresql"
    with _connect(postgres_url) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        assert tables == {"meta", "sources", "labelsets", "windows", "segments", "alerts"}
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname='public'")}
        assert {"windows_source_wall", "alerts_source_wall", "segments_source_start"} <= indexes
        types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_name='windows'").fetchall())
        assert types["wall"] == "double precision" and types["probs"] == "text"


def test_same_columns_as_sqlite(tmp_path, postgres_url):
    import sqlite3

    HistoryStore(tmp_path / "h.db").close()
    HistoryStore(postgres_url).close()
    lite = sqlite3.connect(tmp_path / "h.db")
    with _connect(postgres_url) as conn:
        for table in ("sources", "labelsets", "windows", "segments", "alerts"):
            cols = [r[1] for r in lite.execute(f"PRAGMA table_info({table})")]
            pg = [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns "
                                             "WHERE table_name=%s ORDER BY ordinal_position", (table,))]
            assert pg == cols, table
    lite.close()


@pytest.mark.parametrize("url", ["sqlite", "path"])
def test_open_store_picks_sqlite_for_paths(tmp_path, url):
    target = f"sqlite:///{tmp_path}/h.db" if url == "sqlite" else tmp_path / "h.db"
    s = open_store(target, retention_days=KEEP)
    s.on_prediction(prediction("a", 1000.0))
    assert s.flush() and s.backend == "sqlite" and s.path == str(tmp_path / "h.db")
    s.close()
    assert (tmp_path / "h.db").exists()


def test_reopen_keeps_history(postgres_url):
    s = open_store(postgres_url, retention_days=KEEP)
    s.on_prediction(prediction("a", 1000.0))
    s.close()
    s = open_store(postgres_url, retention_days=KEEP)
    s.on_prediction(prediction("a", 1001.0, labels=["x", "y"], probs=[0.3, 0.7], top="y", confidence=0.7))
    s.flush()
    rows = s.windows("a")
    assert [r["wall"] for r in rows] == [1000.0, 1001.0]
    assert rows[0]["probs"]["jazz"] == 0.7 and rows[1]["probs"] == {"x": 0.3, "y": 0.7}
    assert s.window_labels("a") == LABELS + ["x", "y"]
    s.close()


def test_retention_prune(postgres_url):
    s = open_store(postgres_url, retention_days=1.0)
    now, day = 2_000_000_000.0, 86400.0
    fill_for_retention(s, now)
    assert s.prune(now=now) == 2 + 2 + 1 + 1 + 1
    assert [r["wall"] for r in s.windows("a")] == [now - 0.5 * day, now - 10]
    assert [a["wall"] for a in s.alerts("a")] == [now - 0.5 * day, now - 10]
    assert [g["genre"] for g in s.segments("a")] == ["rock"]
    assert [x["id"] for x in s.sources()] == ["a"] and s.prune(now=now) == 0
    s.close()


def test_full_queue_drops_and_counts(postgres_url):
    s = open_store(postgres_url, queue_size=2, retention_days=KEEP)
    n = 3000
    kept = flood(s, n)
    assert kept + s.dropped == n and kept > 0
    s.close()


def test_unusable_urls_raise_store_error(postgres_server, postgres_url):
    dead = postgres_server.rsplit(":", 1)[0] + ":1/postgres"  # nothing listens on port 1
    with pytest.raises(StoreError, match="cannot open history database"):
        open_store(dead)
    with pytest.raises(StoreError, match="cannot open"):
        open_store(postgres_server.rsplit("/", 1)[0] + "/no_such_db")
    with pytest.raises(StoreError, match="unsupported scheme"):
        open_store("mysql://u@h/db")
    with _connect(postgres_url) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer"):
        open_store(postgres_url)


def test_history_from_before_content_is_upgraded(postgres_url):
    from server.sinks.history_sql import PG_META, PG_SCHEMA

    with _connect(postgres_url) as conn:
        conn.execute(PG_META)
        conn.execute(PG_SCHEMA.replace(", content TEXT", ""))
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO labelsets(labels) VALUES ('[\"jazz\", \"rock\"]')")
        conn.execute("INSERT INTO windows(source, wall, t, model, top, confidence, uncertain, labelset, probs) "
                     "SELECT 'a', 1000.0, 1.0, 'm', 'jazz', 0.8, 0, id, '[0.8, 0.2]' FROM labelsets")
    s = open_store(postgres_url, retention_days=KEEP)
    try:
        s.on_prediction(prediction("a", 1001.0, content="speech"))
        s.flush()
        assert [(r["content"], r["top"]) for r in s.windows("a")] == [("music", "jazz"), ("speech", None)]
    finally:
        s.close()
    with _connect(postgres_url) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


def test_password_is_not_shown(postgres_server):
    url = postgres_server.replace("postgres@", "postgres:s3cret@")  # trust auth ignores it
    s = open_store(url)
    assert "s3cret" not in s.path and "s3cret" not in str(s.stats())
    s.close()


def test_closed_store_ignores_events(postgres_url):
    s = open_store(postgres_url)
    s.close()
    s.on_prediction(prediction("a", 1000.0))
    with pytest.raises(StoreError, match="closed"):
        s.flush()


def test_lost_connections_come_back(store, postgres_url):
    store.on_prediction(prediction("a", 1000.0))
    assert store.flush() and len(store.windows("a")) == 1  # a read connection now waits in the pool
    with _connect(postgres_url) as conn:  # the server drops every other connection (restart, failover)
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname=current_database() AND pid<>pg_backend_pid()")
    store.on_prediction(prediction("a", 1001.0))
    for _ in range(50):  # the first commit fails and is kept; a retry on a new connection succeeds
        if store.flush():
            break
    assert [r["wall"] for r in store.windows("a")] == [1000.0, 1001.0]
    assert store.dropped == 0 and store.last_error is None


WRITER = textwrap.dedent("""
    import sys, time
    from server.sinks.history import open_store
    from tests.support.store import prediction
    url, source, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = open_store(url, commit_interval=0.02, retention_days=1e6)
    shared = ["ambient", "techno"]  # a labelset new to the database, first used by both at once
    own = [source + "-genre", "other"]
    for i in range(n):
        wall = 1000.0 + i
        if i % 3 == 1:
            store.on_prediction(prediction(source, wall, labels=shared, probs=[0.4, 0.6], top="techno"))
        elif i % 3 == 2:
            store.on_prediction(prediction(source, wall, labels=own, probs=[0.9, 0.1], top=own[0]))
        else:
            store.on_prediction(prediction(source, wall, top="jazz"))
        if i % 10 == 9:
            store.on_segment({"source": source, "genre": "jazz", "start": 0.0, "end": float(i),
                              "start_wall": 1000.0, "end_wall": wall, "mean_confidence": 0.7,
                              "windows": i + 1, "open": i < n - 1})
            store.on_alert({"source": source, "rule": 0, "type": "silence", "message": "quiet",
                            "t": float(i), "wall": wall, "state": "firing"})
            store.on_sources({"sources": [{"id": source, "kind": "stream", "label": source.upper()},
                                          {"id": "shared-src", "kind": "stream", "label": source}]})
            time.sleep(0.01)  # let the other process's batches interleave with ours
    ok = store.flush()
    print("done", ok, store.errors, store.dropped, store.written, flush=True)
    store.close()
""")


def test_two_writer_processes_and_a_reader(postgres_url):
    n = 300
    reader = open_store(postgres_url, retention_days=KEEP)  # creates the schema; the writers find it
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, postgres_url, src, str(n)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for src in ("w1", "w2")]
    seen = []
    while any(p.poll() is None for p in procs):  # read while they write
        seen.append(sum(len(reader.windows(src, limit=100000)) for src in ("w1", "w2")))
    outs = [p.communicate(timeout=60) for p in procs]
    for (out, err), p in zip(outs, procs):
        assert p.returncode == 0, err
        assert out.split()[:4] == ["done", "True", "0", "0"], out + err
    assert seen == sorted(seen)  # committed rows never disappear
    for src in ("w1", "w2"):
        rows = reader.windows(src, limit=100000)
        assert [r["wall"] for r in rows] == [1000.0 + i for i in range(n)]
        assert rows[0]["probs"] == dict(zip(LABELS, [0.1, 0.1, 0.7, 0.1]))
        assert rows[1]["probs"] == {"ambient": 0.4, "techno": 0.6}
        assert rows[2]["probs"] == {f"{src}-genre": 0.9, "other": 0.1}
        assert reader.window_labels(src) == LABELS + ["ambient", "techno", f"{src}-genre", "other"]
        assert reader.summary(src) == {"total_seconds": float(n), "windows": n,
                                       "genres": {"jazz": 100.0, "techno": 100.0, f"{src}-genre": 100.0},
                                       "content": {"music": float(n), "speech": 0.0, "silence": 0.0, "noise": 0.0}}
        assert reader.segments(src) == [{"genre": "jazz", "start": 0.0, "end": float(n - 1), "start_wall": 1000.0,
                                         "end_wall": 1000.0 + n - 1, "mean_confidence": 0.7, "windows": n,
                                         "open": False}]
        assert len(reader.alerts(src)) == n // 10
    sources = {s["id"]: s for s in reader.sources()}
    assert set(sources) == {"w1", "w2", "shared-src"} and sources["w1"]["label"] == "W1"
    with _connect(postgres_url) as conn:  # each distinct labelset stored once, whoever wrote it first
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT labels) FROM labelsets").fetchone() == (4, 4)
    reader.close()


def test_kill_9_loses_at_most_the_last_second(postgres_url):
    HistoryStore(postgres_url).close()  # schema first, so the child starts writing at once
    kill_writer_and_check(postgres_url, lambda: open_store(postgres_url))


def test_a_rejected_row_loses_itself_only(store):
    """PostgreSQL checks types SQLite would take: a row it refuses must not take its batch with it."""
    store.on_prediction(prediction("a", 1000.0))
    store.on_segment({"source": "a", "genre": "jazz", "start": 0.0, "end": 1.0, "start_wall": 1000.0,
                      "end_wall": 1001.0, "mean_confidence": 0.7, "windows": 2 ** 40, "open": True})  # > INTEGER
    store.on_alert({"source": "a", "rule": 0, "type": "silence", "message": "quiet\0", "t": 1.0,
                    "wall": 1000.5, "state": "firing"})  # NUL: not allowed in PostgreSQL text
    store.on_prediction(prediction("a", 1001.0))
    assert store.flush()
    assert [r["wall"] for r in store.windows("a")] == [1000.0, 1001.0]
    assert [a["message"] for a in store.alerts("a")] == ["quiet"]
    assert store.segments("a") == [] and store.dropped == 1 and store.errors == 1
    assert "out of range" in store.last_error
