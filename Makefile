# Two commands matter: `make demo` and `make test`. Both do all setup first and are
# idempotent: once everything is in place, setup takes about a second.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)
	@$(VENV)/bin/harness setup

DEMO_RUN := demo-$(shell date +%Y%m%d-%H%M%S)

demo: setup
	$(VENV)/bin/harness exec --run-id $(DEMO_RUN) --timeout 2 \
	  'cat /etc/os-release | head -1' \
	  'cd /tmp && export GREETING=hello && mkdir -p work && echo "$$GREETING from $$PWD" > work/note.txt' \
	  'cat work/note.txt; echo "cwd is still $$PWD"; echo "more" >> /etc/issue; chmod 600 /etc/motd' \
	  'python3 -c "import sys; print(sys.version.split()[0])"' \
	  'curl -sS --max-time 3 http://deb.debian.org >/dev/null || echo "no network (by default)"' \
	  'sleep 30' || true
	@echo; echo "What was recorded (harness sql over .harness/traces.duckdb):"
	$(VENV)/bin/harness sql "SELECT command, exit_code, timed_out, round(duration_ms, 1) AS ms, \
	  stdout_bytes, round(cpu_s, 3) AS cpu_s FROM commands WHERE run_id = '$(DEMO_RUN)' ORDER BY started_at"
	$(VENV)/bin/harness sql "SELECT path, op, file_type, size, mode FROM file_changes \
	  WHERE run_id = '$(DEMO_RUN)' ORDER BY changed_at, path"

test: setup
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy harness sandbox traces reports

bench: setup
	$(VENV)/bin/python benchmarks/exec_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
