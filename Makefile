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

# Not --quiet: the first install takes a while, and pip's own lines and progress bars
# show what it is doing.
$(APP_STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing hpmkd and the app's packages into $(VENV) (first run only; see README)"
	$(BIN)/python -m pip install --progress-bar on -e ".[app]"
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
