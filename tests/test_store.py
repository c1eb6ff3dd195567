"""HistoryStore on real SQLite files: batching, WAL, kill -9 durability, retention, queries, full disk."""

import logging
import os
import sqlite3
import time

import pytest

from server.sinks.history import SCHEMA_VERSION, HistoryStore, StoreError
from server.sinks.history_writer import WAL_KEEP_BYTES
from tests.support.store import (LABELS, fill_disk, fill_for_retention, flood, kill_writer_and_check, prediction,
                                 tiny_tmpfs)

KEEP = 1e6  # retention (days) long enough that the writer's own hourly prune keeps 1970-era test rows


@pytest.fixture
def store(tmp_path):
    s = HistoryStore(tmp_path / "history.db", retention_days=KEEP)
    yield s
    s.close()


def test_batched_writes_visible_after_flush(store):
    for i in range(50):
        store.on_prediction(prediction("a", 1000.0 + i, top="jazz" if i % 2 else "rock"))
    assert store.flush()
    rows = store.windows("a")
    assert [r["wall"] for r in rows] == [1000.0 + i for i in range(50)]
    first = rows[0]
    assert first["top"] == "rock" and first["confidence"] == 0.7 and first["uncertain"] is False
    assert list(first["probs"]) == LABELS and abs(sum(first["probs"].values()) - 1) < 1e-4
    assert first["probs"]["rock"] == 0.7 and first["smoothed"] is None
    assert store.windows("a", 1010, 1019.5, limit=5) == rows[10:15]
    assert store.windows("b") == []
    assert store.written >= 50 and store.dropped == 0 and store.errors == 0
    assert [s["id"] for s in store.sources()] == ["a"]
    assert store.sources()[0]["first_seen"] == 1000.0 and store.sources()[0]["last_seen"] == 1049.0


def test_smoothed_and_level_stored(store):
    store.on_prediction(prediction("a", 1000.0, smoothed=[0.1, 0.2, 0.6, 0.1], level_db=-23.5))
    store.on_prediction(prediction("a", 1001.0, smoothed=[0.0, 0.0, 1.0, 0.0], level_db=None))
    store.flush()
    a, b = store.windows("a")
    assert a["smoothed"] == dict(zip(LABELS, [0.1, 0.2, 0.6, 0.1])) and a["level_db"] == -23.5
    assert b["smoothed"] == {"blues": 0.0, "classical": 0.0, "jazz": 1.0, "rock": 0.0} and b["level_db"] is None


def test_wal_schema_and_indexes(store):
    store.on_prediction(prediction("a", 1000.0))
    store.flush()
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"windows_source_wall", "alerts_source_wall", "segments_source_start"} <= indexes
    conn.close()


def test_reopen_keeps_history(tmp_path):
    s = HistoryStore(tmp_path / "h.db", retention_days=KEEP)
    s.on_prediction(prediction("a", 1000.0))
    s.close()
    s = HistoryStore(tmp_path / "h.db", retention_days=KEEP)
    s.on_prediction(prediction("a", 1001.0, labels=["x", "y"], probs=[0.3, 0.7], top="y", confidence=0.7))
    s.flush()
    rows = s.windows("a")
    assert [r["wall"] for r in rows] == [1000.0, 1001.0]
    assert rows[0]["probs"]["jazz"] == 0.7 and rows[1]["probs"] == {"x": 0.3, "y": 0.7}
    s.close()


def test_kill_9_loses_at_most_the_last_second(tmp_path):
    path = tmp_path / "killed.db"
    kill_writer_and_check(str(path), lambda: HistoryStore(path))


def test_retention_prune(tmp_path):
    s = HistoryStore(tmp_path / "h.db", retention_days=1.0)
    now = 2_000_000_000.0
    day = 86400.0
    fill_for_retention(s, now)
    assert len(s.windows("a")) == 4
    removed = s.prune(now=now)
    assert removed == 2 + 2 + 1 + 1 + 1  # windows, alerts, the old segment, "gone"'s window and source row
    assert [r["wall"] for r in s.windows("a")] == [now - 0.5 * day, now - 10]
    assert [a["wall"] for a in s.alerts("a")] == [now - 0.5 * day, now - 10]
    assert [g["genre"] for g in s.segments("a")] == ["rock"]  # still overlaps the retained period
    assert [x["id"] for x in s.sources()] == ["a"]
    assert s.prune(now=now) == 0
    s.close()


def test_summary_adds_up(store):
    walls = [(1000.0 + i, "jazz") for i in range(10)] + [(1010.0 + i, "rock") for i in range(5)]
    walls += [(1115.0 + i, "jazz") for i in range(5)]  # after a 101-s gap in capture
    for wall, top in walls:
        store.on_prediction(prediction("a", wall, top=top))
    store.on_prediction(prediction("a", 1120.0, top="jazz", confidence=0.3, uncertain=True))
    store.flush()
    s = store.summary("a")
    # each window lasts until the next (capped at 3 s across the gap); the last like the one before
    assert s["genres"] == {"jazz": 15.0, "rock": 7.0, "uncertain": 1.0}
    assert s["total_seconds"] == sum(s["genres"].values()) == 23.0 and s["windows"] == 21
    assert s["content"] == {"music": 23.0, "speech": 0.0, "silence": 0.0, "noise": 0.0}
    assert store.summary("a", 1115.0, 1119.0) == {"total_seconds": 5.0, "genres": {"jazz": 5.0}, "windows": 5,
                                                  "content": {"music": 5.0, "speech": 0.0, "silence": 0.0,
                                                              "noise": 0.0}}
    assert store.summary("a", 5000, 6000) == {"total_seconds": 0, "genres": {}, "windows": 0, "content": {
        "music": 0, "speech": 0.0, "silence": 0.0, "noise": 0.0}}


def test_talk_is_counted_apart_from_genres(store):
    for i in range(20):
        content = "speech" if 5 <= i < 12 else "silence" if i == 12 else "music"
        store.on_prediction(prediction("a", 1000.0 + i, top="jazz", content=content))  # talk, silence: no genre
    store.on_prediction(prediction("a", 1020.0, top="rock"))  # from an older engine: no content, i.e. music
    store.flush()
    s = store.summary("a")
    assert s["genres"] == {"jazz": 12.0, "rock": 1.0}
    assert s["content"] == {"music": 13.0, "speech": 7.0, "silence": 1.0, "noise": 0.0}
    assert s["total_seconds"] == 21.0
    rows = store.windows("a")
    assert [r["content"] for r in rows[4:7]] == ["music", "speech", "speech"] and rows[5]["top"] is None
    assert rows[-1]["content"] == "music"


def test_history_from_before_content_is_upgraded(tmp_path):
    from server.sinks.history_sql import SCHEMA

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.replace(", content TEXT", "") + "PRAGMA user_version=1;")
    conn.execute("INSERT INTO labelsets(id, labels) VALUES (1, ?)", ('["jazz", "rock"]',))
    conn.execute("INSERT INTO windows(source, wall, t, model, top, confidence, uncertain, labelset, probs) "
                 "VALUES ('a', 1000.0, 1.0, 'm', 'jazz', 0.8, 0, 1, '[0.8, 0.2]')")
    conn.commit()
    conn.close()
    s = HistoryStore(path, retention_days=KEEP)
    try:
        s.on_prediction(prediction("a", 1001.0, content="speech"))
        s.flush()
        assert [(r["content"], r["top"]) for r in s.windows("a")] == [("music", "jazz"), ("speech", None)]
        assert s.summary("a")["content"]["speech"] == 1.0
    finally:
        s.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


def test_segments_upsert_and_close(store):
    seg = {"genre": "jazz", "start": 10.0, "end": 25.0, "start_wall": 1010.0, "end_wall": 1025.0,
           "mean_confidence": 0.8, "windows": 15, "open": True}
    store.on_segment({"source": "a", **seg})
    store.on_segment({"source": "a", **seg, "end": 40.0, "end_wall": 1040.0, "windows": 30})
    store.on_segment({"source": "a", "segment": {**seg, "end": 55.0, "end_wall": 1055.0, "windows": 45,
                                                 "mean_confidence": 0.75, "open": False}})
    store.on_segment({"source": "a", "genre": "rock", "start": 55.0, "end": 70.0, "start_wall": 1055.0,
                      "end_wall": 1070.0, "mean_confidence": 0.9, "windows": 15, "open": True})
    store.flush()
    segs = store.segments("a")
    assert segs == [
        {"genre": "jazz", "start": 10.0, "end": 55.0, "start_wall": 1010.0, "end_wall": 1055.0,
         "mean_confidence": 0.75, "windows": 45, "open": False},
        {"genre": "rock", "start": 55.0, "end": 70.0, "start_wall": 1055.0, "end_wall": 1070.0,
         "mean_confidence": 0.9, "windows": 15, "open": True},
    ]
    assert [s["genre"] for s in store.segments("a", 1060, 2000)] == ["rock"]
    assert [s["genre"] for s in store.segments("a", 0, 1020)] == ["jazz"]
    assert store.segments("a", 0, 1000) == []


def test_alerts_stored(store):
    for state, wall in (("firing", 1000.0), ("resolved", 1060.0)):
        store.on_alert({"source": "a", "rule": 1, "type": "unexpected_genre", "message": "rock for 60 s",
                        "t": wall - 1000, "wall": wall, "state": state})
    store.flush()
    alerts = store.alerts("a")
    assert [(a["state"], a["wall"], a["rule"], a["type"]) for a in alerts] == [
        ("firing", 1000.0, 1, "unexpected_genre"), ("resolved", 1060.0, 1, "unexpected_genre")]
    assert store.alerts("a", 1001, 2000)[0]["state"] == "resolved"


def test_sources_event_upserts(store):
    payload = {"sources": [{"id": "file-1", "kind": "file", "label": "Demo", "state": "running",
                            "samplerate": 44100, "windows": 3, "hop": 1.0}], "model": {"name": "m"}}
    store.on_sources(payload)
    payload["sources"][0].update(label="Renamed", state="stopped")
    store.on_sources(payload)
    store.flush()
    (src,) = store.sources()
    assert src["id"] == "file-1" and src["kind"] == "file" and src["label"] == "Renamed"
    assert src["spec"] == {"kind": "file", "label": "Renamed", "samplerate": 44100, "hop": 1.0}
    assert store.has_source("file-1") and not store.has_source("nope")


def test_bad_payloads_are_counted_not_raised(store):
    store.on_prediction({"source": "a"})  # no wall
    store.on_prediction(prediction("a", 1000.0, probs=[0.5, 0.5]))  # probs do not match labels
    store.on_segment({"source": "a", "genre": "jazz"})
    store.on_sources({"sources": [{"kind": "file"}]})
    store.on_prediction(prediction("a", 1001.0))
    assert store.flush()
    assert store.errors == 4
    assert [r["wall"] for r in store.windows("a")] == [1001.0]


def test_full_queue_drops_and_counts(tmp_path):
    s = HistoryStore(tmp_path / "h.db", queue_size=2, retention_days=KEEP)
    n = 5000
    kept = flood(s, n)
    assert kept + s.dropped == n and kept > 0
    s.close()


def test_unusable_paths_raise_store_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open"):
        HistoryStore(tmp_path)  # a directory
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        HistoryStore(junk)
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        HistoryStore(newer)


def test_closed_store_ignores_events(tmp_path):
    s = HistoryStore(tmp_path / "h.db")
    s.close()
    s.on_prediction(prediction("a", 1000.0))  # the engine may still call it while shutting down
    with pytest.raises(StoreError, match="closed"):
        s.flush()


def test_full_disk_counts_errors_and_recovers():
    with tiny_tmpfs("512k") as (directory, why):
        if directory is None:
            pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {why}")
        s = HistoryStore(os.path.join(directory, "h.db"), commit_interval=0.1, retention_days=KEEP)
        for i in range(20):
            s.on_prediction(prediction("a", 1000.0 + i))
        assert s.flush()
        filler = fill_disk(directory)
        for i in range(20, 3000):  # far more than fits in the WAL's free pages
            s.on_prediction(prediction("a", 1000.0 + i))
        assert s.flush() is False  # no exception: the batch waits for space
        assert s.errors >= 1 and "full" in s.last_error
        assert [r["wall"] for r in s.windows("a")][:20] == [1000.0 + i for i in range(20)]  # reads still work
        os.remove(filler)
        s.on_prediction(prediction("a", 5000.0))
        assert s.flush()  # space is back: the waiting rows and the new one are written
        walls = [r["wall"] for r in s.windows("a", limit=100000)]
        assert walls == [1000.0 + i for i in range(3000)] + [5000.0]
        assert s.dropped == 0 and s.last_error is None
        s.close()


def _damaged_history(path) -> bytes:
    """A real history file whose pages from the middle on are overwritten by junk (left in place, new
    windows would be rejected as "malformed" and history queries fail); returns its bytes."""
    s = HistoryStore(path, retention_days=KEEP)
    for i in range(4000):
        s.on_prediction(prediction("a", 1000.0 + i, top=LABELS[i % 4]))
    assert s.flush()
    s.close()  # the last connection: the WAL is checkpointed into the file and removed
    conn = sqlite3.connect(path)
    page_size, pages = conn.execute("PRAGMA page_size").fetchone()[0], conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    assert pages > 20 and not os.path.exists(f"{path}-wal")
    with open(path, "r+b") as f:
        f.seek(pages // 2 * page_size)
        f.write(os.urandom((pages - pages // 2 - 1) * page_size))
    return path.read_bytes()


def test_a_damaged_file_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog):
    from server.engine import Engine
    from server.web.app import create_app

    path = tmp_path / "history.sqlite"
    damaged = _damaged_history(path)
    with caplog.at_level("ERROR", logger="server.sinks.history_sql"):
        s = HistoryStore(path, retention_days=KEEP)
    try:
        assert s.reset and "damaged" in caplog.text and s.reset["damaged"] in caplog.text
        aside = s.reset["damaged"]
        assert os.path.basename(aside).startswith("history.sqlite.damaged-")
        assert open(aside, "rb").read() == damaged, "the damaged file is kept as it was"
        # New windows are stored, not thrown away, and the history API answers.
        for i in range(20):
            s.on_prediction(prediction("a", 9000.0 + i))
        assert s.flush() and s.errors == 0 and s.dropped == 0
        assert [r["wall"] for r in s.windows("a")] == [9000.0 + i for i in range(20)]
        assert sqlite3.connect(path).execute("PRAGMA quick_check").fetchone()[0] == "ok"
        engine = Engine()
        app, _ = create_app(engine, upload_dir=str(tmp_path / "uploads"), store=s)
        client = app.test_client()
        res = client.get("/api/history?source=a&from=8000&to=10000")
        assert res.status_code == 200 and len(res.json) == 20
        assert client.get("/api/history/status").json["reset"]["damaged"] == aside
        assert client.get("/api/sources").json["history"]["reset"]["damaged"] == aside  # what the dashboard reads
    finally:
        s.close()
    # A sound file is not touched: reopening finds the fresh history, no second reset.
    again = HistoryStore(path, retention_days=KEEP)
    assert again.reset is None and len(again.windows("a")) == 20
    again.close()


def test_a_second_damaged_file_keeps_the_first(tmp_path):
    path = tmp_path / "history.sqlite"
    _damaged_history(path)
    first = HistoryStore(path, retention_days=KEEP)
    first.close()
    _damaged_history(path)
    second = HistoryStore(path, retention_days=KEEP)
    second.close()
    assert first.reset["damaged"] != second.reset["damaged"]
    assert os.path.exists(first.reset["damaged"]) and os.path.exists(second.reset["damaged"])


# --- the reader alone, and the rows ---------------------------------------------------------------------
def test_a_reader_alone_sets_up_a_new_history_and_reads_what_a_writer_commits(tmp_path):
    import threading

    from server.sinks.history import open_reader

    path = tmp_path / "h.db"
    writers_before = sum(t.name == "history-writer" for t in threading.enumerate())
    reader = open_reader(path)  # before any writer: the schema is there, the history empty
    try:
        assert sum(t.name == "history-writer" for t in threading.enumerate()) == writers_before
        assert reader.sources() == [] and not reader.has_source("a")
        assert reader.status() == {"enabled": True, "reset": None, "last_error": None}
        writer = HistoryStore(path, retention_days=KEEP)
        writer.on_prediction(prediction("a", 1000.0, smoothed=[0.1, 0.2, 0.6, 0.1]))
        assert writer.flush()
        assert reader.windows("a") == writer.windows("a") and len(reader.windows("a")) == 1
        assert reader.summary("a")["windows"] == 1
        writer.close()
    finally:
        reader.close()


def test_every_row_field_is_a_column_of_its_table():
    import re

    from server.sinks.history_sql import INSERT, SCHEMA

    tables = {name: set(re.findall(r"(\w+) [A-Z]+", body))
              for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\);", SCHEMA, re.S)}
    for row_type, statement in INSERT.items():
        table = statement.split()[2].split("(")[0]
        columns = ["labelset" if f == "labels" else f for f in row_type._fields]
        assert set(columns) <= tables[table], (row_type.__name__, set(columns) - tables[table])


def _clock_ahead(days: float):
    return lambda: time.time() + days * 86400.0


def test_a_clock_set_ahead_at_start_prunes_nothing_recent(tmp_path, caplog):
    day = 86400.0
    now = time.time()
    s = HistoryStore(tmp_path / "h.db", retention_days=30.0)
    for wall in (now - 45 * day, now - 10 * day, now - day, now - 60):
        s.on_prediction(prediction("a", wall))
    s.close()
    caplog.set_level(logging.INFO, logger="server.sinks.history_writer")
    # Restarted with the clock 40 days ahead (a VM restored, an NTP fix): only the window that is
    # over 30 days older than the newest goes.
    s = HistoryStore(tmp_path / "h.db", retention_days=30.0, clock=_clock_ahead(40))
    assert s.prune() == 1
    assert [w["wall"] for w in s.windows("a", limit=10)] == [now - 10 * day, now - day, now - 60]
    assert "40.0 days past the newest window" in caplog.text and "pruned 1 rows" in caplog.text
    # Windows written under that clock are kept too; an explicit time still prunes by it.
    s.on_prediction(prediction("a", now + 40 * day))
    s.flush()
    assert s.prune() == 0 and len(s.windows("a", limit=10)) == 4
    assert s.prune(now=now + 40 * day) == 3
    s.close()


def test_a_clock_that_jumps_during_a_run_prunes_by_the_time_that_passed(tmp_path):
    day = 86400.0
    offset = [0.0]
    s = HistoryStore(tmp_path / "h.db", retention_days=30.0, clock=lambda: time.time() + offset[0])
    now = time.time()
    for wall in (now - 31 * day, now - 20 * day, now - 60):
        s.on_prediction(prediction("a", wall))
    s.flush()
    offset[0] = 40 * day
    assert s.prune() == 1  # only the window that really is over 30 days old
    assert [w["wall"] for w in s.windows("a", limit=10)] == [now - 20 * day, now - 60]
    offset[0] = -400 * day  # and a clock that goes back prunes less, never more
    assert s.prune() == 0
    s.close()


def test_windows_dated_after_the_clock_are_logged_at_start(tmp_path, caplog):
    now = time.time()
    s = HistoryStore(tmp_path / "h.db", retention_days=30.0)
    s.on_prediction(prediction("a", now + 5 * 86400.0))
    s.close()
    caplog.set_level(logging.WARNING, logger="server.sinks.history_writer")
    s = HistoryStore(tmp_path / "h.db", retention_days=30.0)
    assert "after the clock" in caplog.text
    assert s.prune() == 0 and len(s.windows("a", 0, now + 10 * 86400.0)) == 1
    s.close()


def test_the_log_shrinks_back_once_a_long_reader_lets_go(store):
    reader = sqlite3.connect(store.path)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM windows").fetchone()  # holds a snapshot: the log cannot be reused
    for i in range(60000):
        store.on_prediction(prediction("a", 1000.0 + i))
        if i % 5000 == 4999:  # within the queue's bound
            assert store.flush(timeout=120)
    grown = os.path.getsize(f"{store.path}-wal")
    assert grown > WAL_KEEP_BYTES
    reader.rollback()
    reader.close()
    for batch in range(3):  # the next commits checkpoint the log, then start it again from its beginning
        store.on_prediction(prediction("a", 100000.0 + batch))
        assert store.flush()
    assert os.path.getsize(f"{store.path}-wal") <= WAL_KEEP_BYTES
