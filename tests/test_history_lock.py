"""A history file locked by another process (the sqlite3 shell, a real second process) is waited
for, never taken for damage: the healthy file and its windows stay where they are."""

import os
import subprocess
import time

import pytest

from server.sinks.history import HistoryStore
from tests.support.store import prediction
from tests.support.wait import wait_until

KEEP = 1e6  # retention (days): the writer's own prune keeps the 1970-era test rows
HOLD_S = 7.0  # longer than the connection's 5-s busy timeout

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/sqlite3"), reason="needs the sqlite3 shell")


def test_a_lock_is_waited_for_and_the_healthy_file_kept(tmp_path, caplog):
    path = tmp_path / "history.sqlite"
    s = HistoryStore(path, retention_days=KEEP)
    for i in range(62):
        s.on_prediction(prediction("a", 1000.0 + i))
    assert s.flush()
    s.close()
    marker = tmp_path / "locked"
    holder = subprocess.Popen(["sqlite3", str(path), "PRAGMA locking_mode=EXCLUSIVE;", "BEGIN EXCLUSIVE;",
                               f".system touch {marker}", f".system sleep {HOLD_S}", "COMMIT;"],
                              stdout=subprocess.DEVNULL)
    try:
        wait_until(marker.exists, 10, 0.02)
        started = time.monotonic()
        with caplog.at_level("INFO", logger="server.sinks.history_sql"):
            s = HistoryStore(path, retention_days=KEEP)
        waited = time.monotonic() - started
    finally:
        holder.wait(30)
    try:
        assert waited > 1.0, "the store opened while another process held the file exclusively"
        assert s.reset is None and "damaged" not in caplog.text
        assert "locked by another process" in caplog.text and "let go" in caplog.text
        assert not [p for p in os.listdir(tmp_path) if ".damaged-" in p], os.listdir(tmp_path)
        assert [r["wall"] for r in s.windows("a", limit=1000)] == [1000.0 + i for i in range(62)]
        s.on_prediction(prediction("a", 2000.0))
        assert s.flush() and s.errors == 0
    finally:
        s.close()
