# Every target bootstraps .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the PostgreSQL role the store tests log in as (password: the same)
PG_ROLE ?= automl_test

.PHONY: run test coverage test-all lint bench bench-speed clean

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

.PHONY: postgres
postgres:  ## PostgreSQL for the store tests: Debian's cluster started, role and database made
	@if ! command -v pg_ctlcluster >/dev/null; then \
		echo "PostgreSQL is not installed: the PostgreSQL store tests will be skipped."; exit 0; fi; \
	SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	cluster=$$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $$1 " " $$2}'); \
	if [ -z "$$cluster" ]; then echo "no PostgreSQL cluster: the PostgreSQL tests will be skipped"; exit 0; fi; \
	$$SUDO pg_ctlcluster $$cluster start >/dev/null 2>&1 || true; \
	$$SUDO su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='$(PG_ROLE)'\"" | grep -q 1 || \
		$$SUDO su postgres -c "psql -qc \"CREATE ROLE $(PG_ROLE) LOGIN CREATEDB PASSWORD '$(PG_ROLE)'\"" || \
		echo "WARNING: could not reach PostgreSQL as root: the PostgreSQL store tests will be skipped"

test: $(STAMP) browser postgres  ## the test suite (without the slow end-to-end tests)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

coverage: $(STAMP) browser postgres  ## the same tests with coverage of automl/ (about a quarter slower)
	$(BIN)/python -m pytest -m "not slow" --cov=automl --cov-report=term $(PYTEST_ARGS)

test-all: $(STAMP) postgres  ## every test, slow ones included
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

bench-speed: $(STAMP) wrk  ## serving, batch scoring and fit against the bare library (~4 min)
	$(BIN)/python bench/serve_load.py --seconds 8   # first: needs the two cores to itself
	$(BIN)/python bench/score_at_scale.py
	$(BIN)/python bench/train_vs_lightgbm.py

bench: bench-speed postgres bench-autogluon-env  ## every benchmark, one after another (the figures of docs/benchmarks.md)
	$(BIN)/python bench/scaling.py --plot docs/img/scaling.png
	$(BIN)/python bench/budget_memory.py   # the budget run's memory by phase and process
	$(BIN)/python bench/registry_compare.py
	$(BIN)/python bench/ingest_at_scale.py
	$(BIN)/python bench/monitor_at_scale.py
	$(BIN)/python bench/ui_pages.py
	$(BIN)/python bench/many_models.py   # one server, 100 models: memory, cold/warm latency, cache bound
	$(BIN)/python bench/scale_out.py   # shared search, study bookkeeping, registrations (PostgreSQL)
	$(BIN)/python bench/dask_scoring.py   # 1M rows: one process against Dask with 1 and 2 workers
	$(BIN)/python bench/startup.py   # where the default job's wall time goes, phase by phase
	$(BIN)/python -m pip install --quiet -e ".[bench]"   # FLAML, for the comparison only
	# 14 data sets x 3 seeds x (ours, FLAML, AutoGluon, LightGBM) at 30 s and 120 s: about
	# 5 h on 2 cores; resumable (an interrupted run goes on where it stopped)
	$(BIN)/python bench/automl_vs_flaml.py --budgets 30 120 --out outputs/bench-automl.jsonl --resume

AG_VENV := .venv-autogluon
.PHONY: bench-autogluon-env
bench-autogluon-env:  ## AutoGluon for bench/automl_vs_flaml.py, in a venv of its own (it pins its pandas)
	@if [ -f $(AG_VENV)/.installed ]; then exit 0; fi; \
	test -x $(AG_VENV)/bin/python || $(PYTHON) -m venv $(AG_VENV); \
	$(AG_VENV)/bin/python -m pip install --quiet --upgrade pip && \
	$(AG_VENV)/bin/python -m pip install --quiet "autogluon.tabular[lightgbm,catboost,xgboost]" && \
	touch $(AG_VENV)/.installed

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .ruff_cache .coverage build dist *.egg-info
