"""A private, real Redis for tests: ``redis-server`` on a free 127.0.0.1 port, no persistence.

Debian package ``redis-server``. ``redis_url`` (fixture) yields ``redis://127.0.0.1:<port>/0``
of a server started for the test module; tests skip, saying why, when the binary is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from server.subprocesses import stop_process

BINARY = "redis-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_redis(timeout: float = 15.0):
    """Start a throwaway redis-server; yield its URL; stop it."""
    binary = shutil.which(BINARY)
    if binary is None:
        pytest.skip("redis-server not found (Debian package: redis-server)")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="gm-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir, "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING")
            time.sleep(0.05)
        yield url
    finally:
        stop_process(proc, grace=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_url():
    with running_redis() as url:
        yield url
