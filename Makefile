# Two commands on a fresh machine:  `make run` (server on embedded SQLite)  and  `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test bench simulate clean

# The shipped plugins: each its own distribution (plugins/<name>/pyproject.toml); the core runs without them.
PLUGINS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e . $(addprefix -e ,$(PLUGINS))
	touch $@

$(TEST_STAMP): $(STAMP) examples/fleet-limits/pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]' $(foreach p,$(PLUGINS),-e '$(p)[test]')
	$(BIN)/pip install --quiet -e examples/fleet-limits  # the example third-party plugin, tested with the suite
	touch $@

# The independent OCPI 2.1.1 peer of plugins/roaming_ocpi/tests/test_extrawest_v211.py: extrawest-ocpi
# pins pydantic 1, so it lives in a virtualenv of its own.
EXTRAWEST := $(VENV)/extrawest-ocpi
$(EXTRAWEST)/.ready:
	$(PYTHON) -m venv $(EXTRAWEST)
	$(EXTRAWEST)/bin/pip install --quiet extrawest-ocpi==2025.7.16 uvicorn==0.23.2
	touch $@

tests/node/node_modules/.package-lock.json: tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund

# Start the server on the embedded SQLite database (migrations applied, login printed).
run: $(STAMP)
	$(BIN)/csms serve

# Run the whole test suite (SQLite and the local PostgreSQL, ocpp-rpc strict stations, Chromium),
# one test file per worker process, as many workers as cores (each test has its own database,
# Redis db index, ports and data directory, so files run side by side); the 30 slowest steps are listed
# at the end, to keep the suite within its 30 minutes.
test: $(TEST_STAMP) tests/node/node_modules/.package-lock.json $(EXTRAWEST)/.ready
	@command -v chromium >/dev/null || scripts/install-chromium.sh
	EXTRAWEST_OCPI_VENV=$(abspath $(EXTRAWEST)) $(BIN)/python -m pytest -q -n auto --dist loadfile --durations=30

bench: $(TEST_STAMP)
	$(BIN)/csms bench

clean:
	rm -rf $(VENV) data .pytest_cache
