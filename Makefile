# Two commands: `make run` starts the app, `make test` runs the whole test suite.
# Both create the virtual environment (.venv) and install what they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/streamlit run app.py

test: $(STAMP)
	bash scripts/ensure-chromium.sh
	$(BIN)/ruff check hpmkd hpmkd_app tests app.py pages bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check hpmkd hpmkd_app tests app.py pages bench

clean:
	rm -rf $(VENV) hpmkd-out .pytest_cache .ruff_cache
