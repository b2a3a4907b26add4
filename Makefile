# b2b-otel: `make demo` shows the product, `make test` runs every test.
# Everything the tests need is installed and started from here, on a fresh Debian machine too.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: all install check collector-check collector-generate lint typecheck docs test test-unit test-e2e pg-start pg-stop demo down clean \
	stack-build stack-up stack-down stack-status bench

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
	@$(VENV)/bin/ruff check $$(ls -d b2b_otel tests scripts examples benchmarks 2>/dev/null)

typecheck: install
	@echo "==> mypy --strict b2b_otel benchmarks"
	@$(VENV)/bin/mypy

docs: install
	@$(PY) scripts/gen_config_docs.py
	@if [ -f scripts/gen_semconv.py ]; then $(PY) scripts/gen_semconv.py; fi

collector-check:
	@echo "==> go vet, go test (collector; the connector and the spool also under -race); mdatagen's files current"
	@cd collector && go vet ./... && go test ./... >/dev/null && go test -race ./connector/... ./processor/... >/dev/null
	@bash collector/tools/mdatagen.sh check

# The collector components' generated files (status, lifecycle and goleak tests) from their metadata.yaml.
collector-generate:
	@bash collector/tools/mdatagen.sh generate

check: lint typecheck collector-check

pg-start:
	@bash scripts/pg.sh start

pg-stop:
	@bash scripts/pg.sh stop

# pytest exits 5 when it collected nothing: that is a failure here, never a silent green.
# Every test, the end-to-end ones against the real local stack included (built on first use).
test: install check pg-start stack-up
	@echo "==> pytest"
	@B2B_OTEL_TEST_STACK=1 B2B_OTEL_TEST_PG_URL="$$(bash scripts/pg.sh url)" $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-unit: install
	@$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

# The product's first impression: the example workload through the local stack, and where to look.
demo: install pg-start stack-up
	@$(PY) -m examples.b2bvalue demo $(DEMO_ARGS)

# The benchmarks, not part of `make test`: each scenario against plain OpenTelemetry, alternating rounds,
# a table and benchmarks/results.json (docs/performance.md). Sustained load needs the local stack's collector.
# BENCH_ARGS="--only hot_path,startup" runs some of them.
bench: install stack-up
	@$(PY) -m benchmarks $(BENCH_ARGS)

# The local observability stack (collector, Jaeger, Prometheus, Alertmanager): scripts/stack.sh.
# A first stack-build compiles two Go binaries (minutes); later ones only what changed.
stack-build:
	@bash scripts/stack.sh build

stack-up:
	@bash scripts/stack.sh up

stack-down:
	@bash scripts/stack.sh down

stack-status:
	@bash scripts/stack.sh status

# The end-to-end tests against the running stack (tests/e2e; skipped unless B2B_OTEL_TEST_STACK=1).
test-e2e: install stack-up
	@echo "==> pytest tests/e2e (against the local stack)"
	@B2B_OTEL_TEST_STACK=1 $(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

down:
	@$(MAKE) --no-print-directory stack-down || true
	@bash scripts/pg.sh stop || true

clean:
	rm -rf $(VENV) .cache build *.egg-info
