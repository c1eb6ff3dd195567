"""The C heap of this process: hand freed memory back to the OS, bound glibc's arenas.

glibc's malloc keeps what a program frees for reuse, and gives every thread that meets a busy
arena one of its own (up to 8 per core), each keeping its own free memory. Request threads come
and go (``server.web.http_server``), and what SQLite and the encoders freed in their arenas would
stay in RSS for good. ``trim()`` returns the free pages of every arena (``malloc_trim(0)``: a
few ms, so after bursts, not per call); ``limit_arenas()`` caps how many arenas there are (set
early: arenas already made stay). On a C library without these calls (musl, macOS) both do
nothing and say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

MAX_ARENAS = 4  # enough for the few threads that allocate at once outside the GIL (SQLite, encoders, model)
_M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h

_libc = None
_libc_lock = threading.Lock()
_trims = 0


def _glibc():
    """glibc, or None on another C library."""
    global _libc
    with _libc_lock:
        if _libc is None:
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.malloc_trim.argtypes, lib.mallopt.argtypes = [ctypes.c_size_t], [ctypes.c_int, ctypes.c_int]
                _libc = lib
            except (OSError, AttributeError):  # not glibc
                _libc = False
        return _libc or None


def trim() -> bool:
    """Hand the free pages of every malloc arena back to the OS; False where the C library cannot."""
    global _trims
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    _trims += 1
    return True


def trims() -> int:
    """How many times ``trim()`` ran in this process."""
    return _trims


def limit_arenas(n: int = MAX_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``n`` for the threads that start from now on; False where the C
    library cannot, or where the operator set a cap (``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES``)."""
    libc = _glibc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, int(n)))
