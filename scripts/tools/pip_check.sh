#!/usr/bin/env bash
# `pip check` on a venv (its python as $1), less musicnn's own requirements: musicnn is installed
# with --no-deps on purpose (requirements-nodeps.lock), everything else must be consistent.
set -euo pipefail
out=$("$1" -m pip check 2>&1) && exit 0
bad=$(grep -v '^musicnn ' <<<"$out" || true)
if [[ -n $bad ]]; then
  echo "pip check: $bad" >&2
  exit 1
fi
