# Two commands matter: `make demo` and `make test`. Both do all setup first and are
# idempotent: once everything is in place, setup takes about a second.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)
	@$(VENV)/bin/harness setup

demo: setup
	@echo "Running the bundled suite (tasks/) with the oracle agent; every trial is recorded."
	$(VENV)/bin/harness run tasks --agent oracle --concurrency 2
	@echo; echo "The record is in .harness/traces.duckdb; for example:"
	$(VENV)/bin/harness sql "SELECT task, command, exit_code, round(duration_ms, 1) AS ms \
	  FROM commands WHERE run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1) \
	  AND task IN ('fix-python-bug', 'git-remove-secret') ORDER BY started_at"
	$(VENV)/bin/harness sql "SELECT task, path, op, file_type FROM file_changes \
	  WHERE run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1) \
	  AND task = 'fix-python-bug' ORDER BY changed_at"
	@echo; echo "The run as one offline HTML file (summary, tasks, every trial; open it in a browser):"
	@run=$$($(VENV)/bin/harness sql "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1" \
	  --format csv | tail -n 1 | tr -d '"'); \
	$(VENV)/bin/harness report "$$run" -o .harness/report.html

# The HTML report's tests drive Debian's headless chromium: installed once when missing (as
# root, with apt); where it cannot be, those tests say why they skip (under CI they fail).
browser:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/lib/chromium/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the report's browser tests (once)."; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
	      echo "warning: chromium could not be installed; the browser tests will say so"; \
	  fi; }

test: setup browser
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy harness sandbox traces reports

bench: setup
	$(VENV)/bin/python benchmarks/exec_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
