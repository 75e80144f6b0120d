# SuperKart: the two commands are `make run` and `make test`; both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
RUN_DIR ?= runs/latest

.PHONY: install run test lab lint format clean

install: $(STAMP)

# Pinned install: every package comes from constraints.txt; nothing is registered globally.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

run: install
	$(BIN)/superkart data --rows 8763 --seed 0 --out $(RUN_DIR)/data.csv
	$(BIN)/superkart train --data $(RUN_DIR)/data.csv --out $(RUN_DIR)/model
	@echo "results: $(RUN_DIR)/ (data.csv, model/manifest.json, model/model.joblib)"

test: install
	$(BIN)/python -m pytest

lab: install
	$(BIN)/jupyter lab notebooks/

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
