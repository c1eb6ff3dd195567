"""settings.json's limits, reads and saves, with real files (fast; the running server is in
test_settings_server.py).

A field over a limit keeps what fits; the file is read only when it is a regular file of a
bounded size; unknown keys are kept in a ``.bad`` copy; a save that fails (read-only folder)
leaves the change in memory, says why and is retried until it works; one server per data
directory.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from server.config import MAX_SOURCES
from server.settings import MAX_FILE_BYTES, DataDirError, Settings, lock_data_dir
from tests.support.wait import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source(i):
    return {"kind": "file", "path": f"/music/{i}.wav", "id": f"file-{i}", "hop": 1.0}


def test_a_field_over_its_limit_keeps_what_fits(tmp_path):
    path = tmp_path / "settings.json"
    n = MAX_SOURCES + 2
    rules = {f"file-{i}": [{"type": "silence", "for": 5}] for i in range(n)}
    rules["file-3"] = [{"type": "silence", "for": -1}]  # a bad entry costs only itself
    path.write_text(json.dumps({"sources": [source(i) for i in range(n)], "rules": rules}))
    settings = Settings(path)
    assert settings["sources"] == [source(i) for i in range(MAX_SOURCES)]
    kept = settings["rules"]
    assert len(kept) == MAX_SOURCES and "file-3" not in kept
    assert kept["file-0"] == [{"type": "silence", "for": 5.0, "threshold_db": -50.0}]
    assert any("more than 200" in p for p in settings.problems), settings.problems
    assert any("'rules'.file-3" in p for p in settings.problems), settings.problems
    assert len(json.loads((tmp_path / "settings.json.bad").read_text())["sources"]) == n  # nothing lost


def test_unknown_keys_are_named_and_kept_in_the_bad_copy(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"retention_days": 3, "future_setting": {"x": 1}}))
    settings = Settings(path)
    assert settings["retention_days"] == 3.0
    assert any("'future_setting'" in p for p in settings.problems)
    assert json.loads((tmp_path / "settings.json.bad").read_text())["future_setting"] == {"x": 1}
    assert "future_setting" not in json.loads(path.read_text())


@pytest.mark.parametrize("make", ["fifo", "dev-zero", "too-big"])
def test_only_a_regular_file_of_bounded_size_is_read(tmp_path, make):
    path = tmp_path / "settings.json"
    if make == "fifo":
        os.mkfifo(path)  # nobody writes: reading it would block start-up forever
    elif make == "dev-zero":
        path.symlink_to("/dev/zero")  # reading it would never end
    else:
        path.write_text(json.dumps({"token": "x", "pad": " " * MAX_FILE_BYTES}))
    started = time.monotonic()
    settings = Settings(path)
    assert time.monotonic() - started < 5
    assert settings["sources"] == [] and "unreadable" in settings.problems[0], settings.problems
    assert (tmp_path / "settings.json.bad").exists() or (tmp_path / "settings.json.bad").is_symlink()
    assert os.path.exists("/dev/zero")  # moved aside: the link, never what it points at


def read_only(folder):
    """Make ``folder`` unwritable, even for root (chattr +i); returns the undo."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available on this file system")
        return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o555)
    return lambda: folder.chmod(0o755)


def test_a_save_that_fails_holds_the_change_says_why_and_is_retried(tmp_path, monkeypatch):
    monkeypatch.setattr("server.settings.SAVE_RETRY_S", 0.2)
    path = tmp_path / "settings.json"
    settings = Settings(path)
    assert settings.update(retention_days=5.0) is True
    heard = []
    settings.on_save_error = heard.append
    undo = read_only(tmp_path)
    try:
        assert settings.update(retention_days=9.0) is False  # no exception: the change holds in memory
        assert settings["retention_days"] == 9.0
        assert "settings could not be saved" in settings.save_error
        assert heard == [settings.save_error]
        assert json.loads(path.read_text())["retention_days"] == 5.0  # the old file is intact
        time.sleep(0.5)  # retries fail meanwhile, quietly
        assert len(heard) == 1
    finally:
        undo()
    # The retry writes the file, clears the error, then tells: wait for all three.
    wait_until(lambda: json.loads(path.read_text())["retention_days"] == 9.0 and settings.save_error is None
               and heard[-1] is None, 5, 0.05)
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temporary files left


def test_a_read_only_data_dir_is_refused_with_one_clear_message(tmp_path):
    undo = read_only(tmp_path)
    try:
        with pytest.raises(DataDirError) as err:
            lock_data_dir(tmp_path)
    finally:
        undo()
    assert "not writable" in str(err.value) and "--data-dir" in str(err.value)


def test_one_process_per_data_dir(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from server.settings import lock_data_dir; l = lock_data_dir(Path(sys.argv[1])); "
                               "print('held', flush=True); time.sleep(60)", str(tmp_path)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirError) as err:
            lock_data_dir(tmp_path)
        assert f"in use by another server (pid {holder.pid})" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    lock = lock_data_dir(tmp_path)  # the holder is gone: its lock went with it
    lock.close()
