# b2b-otel: `make demo` shows the product, `make test` runs every test.
# Everything the tests need is installed and started from here, on a fresh Debian machine too.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: all install check lint typecheck docs test test-unit pg-start pg-stop demo down clean

all: test

# The virtualenv is rebuilt when pyproject.toml changes; pip's download cache is kept by the machine.
$(STAMP): pyproject.toml
	@echo "==> python environment ($(VENV))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@mkdir -p .cache
	@$(PY) -m pip install -q -e ".[test]" > .cache/pip-install.log 2>&1 || { tail -40 .cache/pip-install.log; exit 1; }
	@touch $@

install: $(STAMP)

lint: install
	@echo "==> ruff"
	@$(VENV)/bin/ruff check $$(ls -d b2b_otel tests scripts examples 2>/dev/null)

typecheck: install
	@echo "==> mypy --strict b2b_otel"
	@$(VENV)/bin/mypy

docs: install
	@$(PY) scripts/gen_config_docs.py
	@if [ -f scripts/gen_semconv.py ]; then $(PY) scripts/gen_semconv.py; fi

check: lint typecheck

pg-start:
	@bash scripts/pg.sh start

pg-stop:
	@bash scripts/pg.sh stop

# pytest exits 5 when it collected nothing: that is a failure here, never a silent green.
test: install check pg-start
	@bash scripts/ensure_debs.sh prometheus-alertmanager
	@echo "==> pytest"
	@B2B_OTEL_TEST_PG_URL="$$(bash scripts/pg.sh url)" $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-unit: install
	@$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

demo: install
	@$(PY) -m b2b_otel.cli demo

down:
	@bash scripts/pg.sh stop || true

clean:
	rm -rf $(VENV) .cache build *.egg-info
