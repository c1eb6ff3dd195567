"""How a command reports a failure: one ``error:`` line on stderr, and its exit status."""

from __future__ import annotations

import sys

USAGE = 2   # bad input or configuration: nothing was started
FAILED = 1  # the work started and did not succeed


def fail(message: str, status: int = USAGE) -> int:
    """Print ``error: message`` (its first line) to stderr; return ``status`` for the command to exit with."""
    print(f"error: {message.splitlines()[0] if message else message}", file=sys.stderr)
    return status
