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

.PHONY: install compile test test-long run reset demo lint format bench clean

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

# Debian packages the tests use: Chromium for the web store's browser tests; for the interop tests
# (tests/interop) the BitTorrent clients nobody here wrote (aria2, Transmission), and for the home
# router in a network namespace iproute2, nftables and miniupnpd (UPnP IGD, NAT-PMP and PCP); for
# the HTTP tracker's tests (tests/tracker) nginx as the TLS reverse proxy in front of it.
SYSTEM_PACKAGES := chromium aria2 transmission-cli iproute2 nftables miniupnpd nginx-light
SYSTEM_COMMANDS := chromium aria2c transmission-cli ip nft miniupnpd nginx
$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	@if ! ( for c in $(SYSTEM_COMMANDS); do PATH=$$PATH:/usr/sbin:/sbin command -v $$c >/dev/null || exit 1; done ); then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES) \
		|| { $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES); }; \
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

# Two workers (pytest-xdist), each with its own anvils, ports and temporary folders; a test file
# stays on one worker (`loadfile`), so module fixtures (a store, a browser) are set up once.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile

test: compile $(STAMPS)/system
	$(BIN)/pytest $(PYTEST_PARALLEL)

# The long runs: more property-test sequences and bigger random trees.
test-long: compile $(STAMPS)/system
	SEEDMARKET_LONG=1 $(BIN)/pytest $(PYTEST_PARALLEL)

# `make run FRESH=1` (or `make reset` first) starts from an empty chain and store.
run: compile
	$(BIN)/python -m dev.devstack run $(if $(FRESH),--fresh)

# Forget the local chain, the store's database and the dev users of `make run`.
reset:
	rm -rf .data/run

demo: compile
	$(BIN)/python -m dev.demo

# ruff, the formatter, mypy (pyproject's config: every package, dev/ and scripts/) and the layering
# contracts (pyproject's [tool.importlinter]: who may import whom, see docs/ARCHITECTURE.md).
# Slither reads slither.config.json: the offline compiler shim, the remapping, and each excluded
# detector with the one-line reason it is triaged away.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/slither contracts --solc-standard-json

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: compile $(STAMPS)/bench-system
	@for b in bench/*.py; do \
		case $$(basename $$b) in _*) continue;; esac; \
		echo "== $$b"; $(BIN)/python $$b || exit 1; \
	done

clean:
	rm -rf $(VENV) node_modules .build $(STAMPS) .pytest_cache .mypy_cache .ruff_cache
