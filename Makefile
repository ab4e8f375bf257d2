# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export FLASK_APP := app

.PHONY: run test fuzz install bench clean

# Reinstall whenever requirements.txt changes.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed

# Migrate, seed the demo into an empty database, print the demo sign-in, then serve (scripts/run.sh
# starts every long-running process and stops them together).
run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask demo --if-empty
	exec env BIN=$(BIN) PORT=$(PORT) scripts/run.sh

# The layers first (.importlinter: no module imports a layer above its own), then the suite.
test: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fuzz stage only (tests/fuzz): schemathesis against the OpenAPI document and Hypothesis properties of the
# CSV imports and public forms. Bounded and derandomized for CI; FUZZ_SCALE=10 make fuzz runs ten times longer.
# A failing fuzz test's message lists each distinct failure with its input and traceback, so the captured
# output (migrations, logs) is not shown.
fuzz: install
	$(BIN)/python -m pytest -m fuzz --show-capture=no tests/fuzz $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
