# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export FLASK_APP := app

.PHONY: run test install bench clean

# Reinstall whenever requirements.txt changes.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask demo --if-empty
	@echo "Serving on http://127.0.0.1:$(PORT)  (operator console: http://127.0.0.1:$(PORT)/ops)"
	$(BIN)/flask run --host 127.0.0.1 --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
