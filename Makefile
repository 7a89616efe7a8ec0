# Every target bootstraps .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test coverage test-all lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)  ## train the default job on an embedded data set
	$(BIN)/python -m automl

.PHONY: browser
browser:  ## Chromium for the browser test of the data profile report, installed when missing
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	echo "Chromium is missing: installing it with apt-get (tests/test_ingest_report.py needs it)"; \
	SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	if $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium; then \
		echo "Chromium installed: /usr/bin/chromium"; \
	else \
		echo "WARNING: could not install Chromium (needs root or sudo and the Debian archive):" \
			"the browser test of the data profile report will be skipped."; \
	fi

test: $(STAMP) browser  ## the test suite (without the slow end-to-end tests)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

coverage: $(STAMP) browser  ## the same tests with coverage of automl/ (about a quarter slower)
	$(BIN)/python -m pytest -m "not slow" --cov=automl --cov-report=term $(PYTEST_ARGS)

test-all: $(STAMP)  ## every test, slow ones included
	$(BIN)/python -m pytest --cov=automl --cov-report=term $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff, and the layer contracts of pyproject.toml (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

.PHONY: wrk
wrk:  ## the HTTP load generator of bench/serve_load.py, installed when missing (apt)
	@if command -v wrk >/dev/null; then exit 0; fi; \
	echo "wrk is missing: installing it with apt-get (bench/serve_load.py's load generator)"; \
	SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	$$SUDO apt-get install -y --no-install-recommends wrk || { $$SUDO apt-get update && \
		$$SUDO apt-get install -y --no-install-recommends wrk; } || \
		echo "WARNING: could not install wrk: bench/serve_load.py falls back to its Python client"

bench: $(STAMP) wrk  ## every benchmark, one after another (the figures of docs/benchmarks.md)
	$(BIN)/python bench/serve_load.py --seconds 8   # first: needs the two cores to itself
	$(BIN)/python bench/score_at_scale.py
	$(BIN)/python bench/train_vs_lightgbm.py
	$(BIN)/python bench/scaling.py --plot docs/img/scaling.png
	$(BIN)/python bench/registry_compare.py
	$(BIN)/python bench/ingest_at_scale.py
	$(BIN)/python bench/monitor_at_scale.py
	$(BIN)/python bench/ui_pages.py
	$(BIN)/python bench/startup.py   # where the default job's wall time goes, phase by phase
	$(BIN)/python -m pip install --quiet -e ".[bench]"   # FLAML, for the comparison only
	$(BIN)/python bench/automl_vs_flaml.py   # about 50 min on 2 cores (8 data sets x 30 s, 120 s)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .ruff_cache .coverage build dist *.egg-info
