# One entry point for people and CI. `make run` and `make test` work on a fresh Debian 12.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# Test processes for `make check` (pytest-xdist): the suite mostly waits on real servers and
# child processes, so two workers on two cores roughly halve its wall time. 0 runs it in one.
TEST_WORKERS ?= 2

.PHONY: install system-deps run demo ui wheel ui-check check lint types imports unit test bench crash cluster schema clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

system-deps:
	bash scripts/system-deps.sh

## Set up and serve Cadenza (API, web console, engine) on SQLite with the examples published.
## The first start asks for the admin's password (or reads CADENZA_ADMIN_PASSWORD).
run: install ui
	$(BIN)/cadenza serve $(addprefix --publish ,$(wildcard examples/*.yaml))

## Run one example process in the terminal, no server (zero setup).
demo: install
	$(BIN)/cadenza run examples/fanout.yaml --input ticket="Error when saving the invoice" --input 'tags=["billing","ui"]'

## Build the web console into src/cadenza/web/dist (served by `cadenza serve` at /).
ui: ui/node_modules/.installed
	cd ui && npm run build

ui/node_modules/.installed: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund
	touch $@

## Build the wheel (the web console and the migrations inside) into dist/: `pip install` it
## anywhere and `cadenza serve` serves the console. The Dockerfile builds it with the same script.
wheel: install ui
	PYTHON=$(PY) bash scripts/build_wheel.sh dist

lint:
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/ruff check src tests bench scripts

types:
	$(BIN)/mypy

imports:
	$(BIN)/lint-imports

schema:
	$(PY) scripts/gen_schema.py --check
	$(PY) scripts/export_openapi.py --check

## The web console's own gate: the generated API client is current, types, unit tests.
ui-check: ui/node_modules/.installed
	cd ui && npm run check:api && npm run typecheck && npm test

## The quality gate: format, lint, types, layer contracts, schema and OpenAPI checks, the
## console's checks and build, then the whole test suite (browser tests drive the built console)
## except the full crash-point suite, which `make crash` runs (CI runs both). Each of the
## TEST_WORKERS processes starts its own PostgreSQL, MariaDB, Redis and Kafka mock on loopback.
check: lint types imports schema ui-check ui
	$(BIN)/pytest -q -m "not crash" -n $(TEST_WORKERS) --dist worksteal

## Set up everything the tests need (PostgreSQL, MariaDB, Redis, Chromium from Debian) and pass the whole suite.
test: system-deps install check

bench: install
	$(PY) -m bench.run --workload all

## The full crash-point suite (1,512 SIGKILLs on SQLite, PostgreSQL and MariaDB, ~15 min on 2 idle
## cores; `make test` runs only its quick part), then its table of kills per crash point.
crash: system-deps install
	$(BIN)/pytest -q -m crash tests/crash
	$(PY) -m bench.crash

## The full cluster suite: 1,000 instances started round-robin over 2 API processes while 60
## seeded SIGKILLs hit every role (APIs, 3 workers, 2 agent services, the MCP proxy, an external
## worker), on PostgreSQL + Redis Streams and on MariaDB + Kafka (`make test` runs 200 and 6).
cluster: system-deps install
	CADENZA_CLUSTER_INSTANCES=1000 CADENZA_CLUSTER_KILLS=60 $(BIN)/pytest -q -m cluster tests/cluster

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .cadenza ui/node_modules src/cadenza/web/dist dist build
