# Genre Monitor — `make run` sets up and starts the app; `make test` sets up, lints and runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LINT   := $(VENV)/bin/ruff check .
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test test-fast lint bench golden setup lock system-deps system-deps-test clean

run: system-deps $(STAMP)
	$(PY) run.py

test: system-deps-test $(TEST_STAMP)
	$(LINT)
	$(PY) -m pytest

# Leaves out the end-to-end tests (marked slow): servers, browsers, PulseAudio, whole runs of run.py.
test-fast: system-deps-test $(TEST_STAMP)
	$(LINT)
	$(PY) -m pytest -m "not slow"

lint: $(TEST_STAMP)
	$(LINT)

# The original musicnn (numpy 1.26, TF 2.17, tf-keras) runs beside ours in its own venv.
# The bench only builds that venv; it never writes a tracked file.
bench: system-deps $(STAMP)
	test -x build/golden-venv/bin/python || $(PY) scripts/tools/make_golden.py --venv-only
	$(PY) -m bench

# Rewrites the tracked tests/golden/musicnn_golden.npz from the original network: commit it only on purpose.
golden: system-deps $(STAMP)
	$(PY) scripts/tools/make_golden.py

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/tools/install_system_deps.sh run

system-deps-test:
	@bash scripts/tools/install_system_deps.sh test

# The venv holds exactly the locked set: requirements*.lock pin every package, transitive ones
# included, with their hashes (`make lock` writes them from the human-edited requirements*.txt).
# The build tools (requirements-build.lock) come first; everything after is built with them
# (--no-build-isolation), so pip never fetches setuptools or wheel without checking their hashes.
# musicnn ships the pretrained weights; its own pins (numpy<1.17) don't build on Python 3.11,
# so it is installed without its dependencies (requirements-nodeps.lock), and `pip check`
# leaves out only its lines. The project itself is installed editable, so that scripts and
# tools import `server` from anywhere. A changed lock file is newer than the stamp: make reinstalls.
INSTALL := $(PY) -m pip install -q --no-build-isolation
$(STAMP): requirements-build.lock requirements.lock requirements-nodeps.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --only-binary :all: -r requirements-build.lock
	$(INSTALL) --require-hashes -r requirements.lock
	$(INSTALL) --require-hashes --no-deps -r requirements-nodeps.lock
	$(INSTALL) --no-deps -e .
	bash scripts/tools/pip_check.sh $(PY)
	touch $(STAMP)

$(TEST_STAMP): requirements-test.lock $(STAMP)
	$(INSTALL) --require-hashes -r requirements-test.lock
	bash scripts/tools/pip_check.sh $(PY)
	touch $(TEST_STAMP)

# Re-pins requirements*.lock from requirements*.txt (pins already there are kept; UPGRADE=1 takes the newest allowed).
lock:
	bash scripts/tools/lock.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts *.egg-info
