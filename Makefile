# Two commands: `make run` starts the app, `make test` runs the whole test suite.
# Both create the virtual environment (.venv) and install what they need on first use:
# `run` only the engine and the app's packages, `test` also the test tools and Dask.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(APP_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[app]"
	touch $(APP_STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(DEV_STAMP) $(APP_STAMP)

run: $(APP_STAMP)
	$(BIN)/streamlit run app.py

test: $(DEV_STAMP)
	bash scripts/ensure-chromium.sh
	$(BIN)/ruff check hpmkd hpmkd_app tests app.py pages bench
	$(BIN)/python -m pytest -q

lint: $(DEV_STAMP)
	$(BIN)/ruff check hpmkd hpmkd_app tests app.py pages bench

clean:
	rm -rf $(VENV) hpmkd-out .pytest_cache .ruff_cache
