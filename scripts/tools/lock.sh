#!/usr/bin/env bash
# `make lock`: pin requirements.txt and requirements-test.txt (the human-edited lists) into lock files
# with every transitive package and its hashes, which is what make installs:
#   requirements-test.lock  the full tested set (runtime + tests and lint)
#   requirements.lock       the runtime part of it, with the same pins
#   requirements-nodeps.lock  musicnn, installed without its own (unbuildable) pins
#   requirements-build.lock   the build tools (setuptools, wheel) from requirements-build.txt, installed first
#                             so that nothing is built with tools pip fetched unchecked (build isolation)
# Pins already in the lock files are kept; UPGRADE=1 moves everything to the newest allowed release.
# pip-tools runs from its own venv (build/lock-venv), never the app's.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
TOOLS=build/lock-venv
if [[ ! -x $TOOLS/bin/pip-compile ]]; then
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q pip-tools
fi
opts=(--quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
      --no-emit-trusted-host)
upgrade=()
[[ -n "${UPGRADE:-}" ]] && upgrade=(--upgrade)
export CUSTOM_COMPILE_COMMAND="make lock"
"$TOOLS/bin/pip-compile" "${opts[@]}" "${upgrade[@]}" -o requirements-test.lock requirements.txt requirements-test.txt \
    requirements-build.txt
# The runtime lock starts from the full one, so pip-compile keeps its pins and drops what tests alone need.
cp requirements-test.lock requirements.lock
"$TOOLS/bin/pip-compile" "${opts[@]}" -o requirements.lock requirements.txt
# The build tools, likewise: the tested set's pins of setuptools and wheel (--allow-unsafe keeps them).
cp requirements-test.lock requirements-build.lock
"$TOOLS/bin/pip-compile" "${opts[@]}" -o requirements-build.lock requirements-build.txt
# musicnn: one pinned sdist and its hash, outside the resolver.
MUSICNN=musicnn==0.1.0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$TOOLS/bin/pip" download -q --no-deps --no-binary :all: -d "$tmp" "$MUSICNN"
{
  echo "# musicnn ships the pretrained weights; its own pins (numpy<1.17) don't build on Python 3.11,"
  echo "# so make installs it with --no-deps. Written by \`make lock\` (scripts/tools/lock.sh)."
  echo "$MUSICNN \\"
  for f in "$tmp"/*; do
    echo "    --hash=sha256:$(sha256sum "$f" | cut -d' ' -f1)"
  done
} > requirements-nodeps.lock
