# Genre Monitor — `make run` sets up and starts the app; `make test` sets up, lints and runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LINT   := $(VENV)/bin/ruff check .
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test test-fast lint bench golden setup system-deps system-deps-test clean

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

# musicnn ships the pretrained weights; its own pins (numpy<1.17) don't build
# on Python 3.11, so it is installed without its dependencies. The project itself is
# installed editable, so that scripts and tools import `server` from anywhere.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps musicnn==0.1.0
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

$(TEST_STAMP): requirements-test.txt $(STAMP)
	$(PY) -m pip install -q -r requirements-test.txt
	touch $(TEST_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts *.egg-info
