# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export FLASK_APP := app

.PHONY: run test fuzz browser catalogs install bench clean

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

# The browser suite (tests/browser): Playwright drives Debian's chromium (apt-get install chromium; CHROMIUM=path
# for another) through an operator's and a subscriber's walks at 1280 and 360 px, with axe-core on every page.
# Screenshots and axe results go to $(BROWSER_ARTIFACTS).
AXE := tests/browser/node_modules/axe-core/axe.min.js
BROWSER_ARTIFACTS ?= artifacts/browser
$(AXE): tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	touch $@

browser: install $(AXE)
	BROWSER_ARTIFACTS=$(BROWSER_ARTIFACTS) $(BIN)/python -m pytest -m browser tests/browser $(PYTEST_ARGS)

# Subscriber texts: extract every msgid (Python, page templates, message templates) into translations/messages.pot
# and merge it into each language's catalog; translate the new entries, the app compiles them when it starts.
# A new language: $(BIN)/pybabel init -i translations/messages.pot -d translations -l fr
catalogs: install
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k t:2 -k tn:2,3 -k _l -k say --no-location --sort-output \
		--omit-header --ignore-dirs=".venv node_modules tests" -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete

clean:
	rm -rf $(VENV) .pytest_cache
