"""Stopping child processes politely, then firmly."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM ``proc``, wait ``grace`` seconds for it to exit, then SIGKILL it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
