#!/usr/bin/env python3
"""Genre Monitor entry point: parses the command line and dispatches (see server/cli.py)."""

import sys

from server.cli import main

if __name__ == "__main__":
    sys.exit(main())
