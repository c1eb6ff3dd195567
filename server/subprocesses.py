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


class NotUp(RuntimeError):
    """A server did not come up: it exited, or did not answer in time (the message says which)."""


def wait_until_up(url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    """Return once ``url``/healthz answers; ``NotUp`` when ``proc`` exits first or ``timeout`` passes."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise NotUp(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise NotUp(f"the server at {url} did not answer within {timeout:.0f} s")
