"""Where uploads are stored: a full disk answers 507 and keeps nothing; a file where the upload
folder should be is a clear error, not a traceback. Real server processes, real file-size limits."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.web import app_server, write_wav
from tests.test_upload_quota import folder_bytes, post_upload

pytestmark = pytest.mark.slow  # server processes

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


def test_an_upload_on_a_full_disk_is_refused_with_507_and_the_server_goes_on(tmp_path):
    big = write_wav(tmp_path / "long take.wav", seconds=40.0)  # about 1.7 MB
    small = write_wav(tmp_path / "short take.wav", seconds=2.0)  # about 90 KB
    folder = tmp_path / "uploads"
    # Every file the server writes (the spooled request body, the stored upload) ends at 1 MB.
    with app_server(upload_dir=str(folder), file_size_limit=1 * MB) as srv:
        status, answer = post_upload(srv.url, big)
        print(f"upload beyond the disk's room -> {status} {answer}")
        assert status == 507, answer
        assert "no space left" in answer["error"], answer
        assert os.listdir(folder) == []  # nothing of it was kept
        status, answer = post_upload(srv.url, small)
        assert status == 200, answer
        assert folder_bytes(folder) == os.path.getsize(small)
        assert "Traceback" not in srv.log()


_SAVE_UNDER_A_LIMIT = """
import io, json, resource, sys
from werkzeug.datastructures import FileStorage
from server.web.uploads import UploadDiskFullError, UploadStore
store = UploadStore(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    store.save(FileStorage(io.BytesIO(open(sys.argv[2], "rb").read()), filename="take.wav"))
except UploadDiskFullError as exc:
    print(json.dumps({"refused": str(exc)}))
"""


def test_a_stored_upload_that_meets_a_full_disk_leaves_nothing(tmp_path):
    song = write_wav(tmp_path / "take.wav", seconds=2.0)
    folder = tmp_path / "uploads"
    out = subprocess.run([sys.executable, "-c", _SAVE_UNDER_A_LIMIT, str(folder), song], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "no space left" in json.loads(out.stdout)["refused"]
    assert os.listdir(folder) == []


def test_a_file_in_place_of_the_upload_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "uploads"
    blocker.write_text("not a folder")
    out = subprocess.run([sys.executable, "run.py", "serve", "--port", "0", "--data-dir", str(tmp_path / "data"),
                          "--upload-dir", str(blocker)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(blocker) in errors[0] and "is a file" in errors[0], out.stderr
    assert blocker.read_text() == "not a folder"  # left as it was


def test_the_upload_store_names_a_file_in_its_place(tmp_path):
    from server.web.uploads import UploadDirError, UploadStore

    blocker = tmp_path / "uploads"
    blocker.write_bytes(b"x")
    with pytest.raises(UploadDirError, match="is a file"):
        UploadStore(blocker)
