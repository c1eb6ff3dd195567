"""A private, real PostgreSQL server for tests: initdb + pg_ctl in a temp folder, on 127.0.0.1.

Uses the Debian ``postgresql`` package's binaries (/usr/lib/postgresql/<version>/bin) without its
system service. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user (``runuser -u postgres --``). Fixtures: ``postgres_server`` (one per session, yields the
server's base URL) and ``postgres_url`` (a fresh, empty database per test).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import pytest

_counter = itertools.count()


def find_bindir() -> tuple[str | None, str]:
    """The newest PostgreSQL bin directory with initdb and pg_ctl, or (None, why not)."""
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
             if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK)]
    if not found:
        return None, "PostgreSQL server binaries not found (Debian package: postgresql)"
    found.sort(key=lambda d: [int(x) if x.isdigit() else 0 for x in d.split("/")[-2].split(".")])
    return found[-1], ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_postgres():
    """Start a throwaway PostgreSQL server; yield its URL (user ``postgres``, trust auth), or
    (None, reason) when it cannot run here. Stopped and deleted on exit."""
    bindir, why = find_bindir()
    if bindir is None:
        yield None, why
        return
    prefix: list[str] = []
    user = pwd.getpwuid(os.getuid()).pw_name
    root = tempfile.mkdtemp(prefix="genre-pg-")
    if os.getuid() == 0:  # postgres will not run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            os.rmdir(root)
            yield None, "running as root and there is no 'postgres' user to run the server as"
            return
        os.chown(root, pw.pw_uid, pw.pw_gid)
        prefix, user = ["runuser", "-u", "postgres", "--"], "postgres"
    os.chmod(root, 0o700)
    data, logfile = os.path.join(root, "data"), os.path.join(root, "server.log")
    port = _free_port()

    def run(*args):
        r = subprocess.run(prefix + list(args), capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{os.path.basename(args[0])} failed: {(r.stderr or r.stdout).strip()}")

    started = False
    try:
        run(os.path.join(bindir, "initdb"), "-D", data, "-U", user, "-A", "trust", "-E", "UTF8",
            "--no-locale", "--no-sync")
        # Test settings: only the client-visible behaviour matters, not surviving an OS crash.
        opts = (f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
                "-c fsync=off -c full_page_writes=off -c max_connections=50")
        run(os.path.join(bindir, "pg_ctl"), "-D", data, "-l", logfile, "-o", opts, "-w", "-t", "60", "start")
        started = True
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres", None
    finally:
        if started:
            with contextlib.suppress(Exception):
                run(os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database on the server; return its URL."""
    import psycopg

    name = name or f"t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def postgres_server():
    pytest.importorskip("psycopg", reason="psycopg (pip install 'psycopg[binary]') is not installed")
    with running_postgres() as (url, why):
        if url is None:
            pytest.skip(why)
        yield url


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh database on the session's server."""
    return create_database(postgres_server)
