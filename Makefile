# seedmarket — two commands: `make run` starts the store, `make test` runs the tests.
# Both install what is missing first (a venv with the Python package, node packages, the compiler).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps

export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(BIN):$(PATH)
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solc
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install compile test test-long run demo lint format bench clean

$(STAMPS)/venv: pyproject.toml constraints.txt
	@mkdir -p $(STAMPS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "seedmarket needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund
	touch $@

# Debian packages the tests use: Chromium for the web store's browser tests.
SYSTEM_PACKAGES := chromium
$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	@if ! command -v chromium >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES) \
		|| { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES); }; \
	fi
	touch $@

# What the benchmarks compare against: opentracker and wrk (bench/tracker_*.py).
BENCH_PACKAGES := opentracker wrk
$(STAMPS)/bench-system:
	@mkdir -p $(STAMPS)
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get install -y --no-install-recommends $(BENCH_PACKAGES) \
	|| { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends $(BENCH_PACKAGES); }
	touch $@

install: $(STAMPS)/venv $(STAMPS)/npm

.build/__local__.json: $(STAMPS)/venv $(STAMPS)/npm ape-config.yaml $(wildcard contracts/*.sol contracts/test/*.sol)
	$(BIN)/ape compile
	touch $@

compile: .build/__local__.json

test: compile $(STAMPS)/system
	$(BIN)/pytest

# The long runs: more property-test sequences and bigger random trees.
test-long: compile $(STAMPS)/system
	SEEDMARKET_LONG=1 $(BIN)/pytest

run: compile
	$(BIN)/python -m backend.devstack run

demo: compile
	$(BIN)/python -m backend.demo

# Slither reads slither.config.json: the offline compiler shim, the remapping, and each excluded
# detector with the one-line reason it is triaged away.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/slither contracts --solc-standard-json

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: compile $(STAMPS)/bench-system
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules .build $(STAMPS) .pytest_cache .mypy_cache .ruff_cache
