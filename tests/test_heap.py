"""The C heap helper: on glibc it trims and caps arenas for real; elsewhere it does nothing."""

import platform
import subprocess
import sys

import pytest

from server import heap

GLIBC = platform.libc_ver()[0] == "glibc"

# Sixteen threads query SQLite at once (it allocates outside the GIL, so glibc would give the
# threads arenas of their own), then the arenas are counted from malloc_info.
PROBE = """
import ctypes, sqlite3, sys, tempfile, threading
from server import heap
print(heap.limit_arenas(int(sys.argv[1])))

def work():
    c = sqlite3.connect(":memory:")
    c.execute("CREATE TABLE t(x)")
    for _ in range(20):
        c.executemany("INSERT INTO t VALUES (?)", [("y" * 500,)] * 500)
        c.execute("SELECT x, COUNT(*) FROM t GROUP BY x ORDER BY x").fetchall()
    c.close()

threads = [threading.Thread(target=work) for _ in range(16)]
[t.start() for t in threads]
[t.join() for t in threads]
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
path = tempfile.mktemp()
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, fp)
libc.fclose(fp)
print(open(path).read().count("<heap nr="))
print(heap.trim(), heap.trims())
"""


def _probe(cap: int, **env) -> list[str]:
    import os

    out = subprocess.run([sys.executable, "-c", PROBE, str(cap)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env}, check=True)
    return out.stdout.split("\n")


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_arenas_are_capped_and_the_heap_trimmed():
    capped, arenas, trimmed = _probe(2)[:3]
    assert capped == "True" and 1 <= int(arenas) <= 2
    assert trimmed == "True 1"


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_an_operators_arena_setting_wins():
    assert _probe(2, MALLOC_ARENA_MAX="3")[0] == "False"
    assert _probe(2, GLIBC_TUNABLES="glibc.malloc.arena_max=3")[0] == "False"


@pytest.mark.skipif(GLIBC, reason="another C library")
def test_elsewhere_it_does_nothing():
    assert heap.trim() is False and heap.limit_arenas() is False and heap.trims() == 0
