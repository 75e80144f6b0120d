# SuperKart: the two commands are `make run` and `make test`; both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
RUN_DIR ?= runs/latest

.PHONY: install system-packages run serve test notebooks lab lint format clean

install: $(STAMP)

# Pinned install: every package comes from constraints.txt; nothing is registered globally.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	# Build matplotlib's font cache now, or its one-time notice lands in a notebook's output.
	MPLBACKEND=Agg $(BIN)/python -c "import matplotlib.pyplot"
	touch $@

# All notebooks via papermill on the built-in synthetic data; prints where the results are.
run: install
	$(BIN)/superkart run --out $(RUN_DIR)

# Debian's chromium (browser tests), nginx (its config is checked) and wrk (the serving benchmarks); as root
# on a machine with apt, as CI is. Elsewhere the tests that need them say so and skip.
SYSTEM_PACKAGES := chromium nginx wrk
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "note: not installed:$$missing (tests that need them will be skipped)"; fi; \
	fi

# The unit and integration tests (two processes), then strict nbval over the committed
# notebooks (every output compared, in this environment's kernel): the solution notebooks first
# (they write notebooks/outputs, which the student notebooks read), then the student ones.
test: install system-packages
	$(BIN)/python -m pytest -n 2 --dist loadfile tests
	$(BIN)/python -m pytest notebooks/0*.ipynb notebooks/student/0*.ipynb --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg

# Serve the model package of the latest `make run` (http://127.0.0.1:8000/).
serve: install
	$(BIN)/superkart serve --model $(RUN_DIR)/model

# The only way committed notebook outputs are produced: re-execute them in place with their defaults.
# Then the student notebooks (exercise solutions blanked, see superkart_lib/course/student.py) are
# generated into notebooks/student/ and executed the same way, in the solution notebooks' workspace.
NBCONVERT := jupyter nbconvert --to notebook --execute --inplace \
	--ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=600 \
	--NotebookClient.record_timing=False
notebooks: install
	cd notebooks && rm -rf outputs && ../$(BIN)/$(NBCONVERT) 0*.ipynb
	$(BIN)/python -m superkart_lib.course.student --out notebooks/student notebooks/0*.ipynb
	cd notebooks/student && ../../$(BIN)/$(NBCONVERT) 0*.ipynb

# JupyterLab on the course notebooks. As root (containers, CI, cloud notebooks) Jupyter refuses to
# start without --allow-root; LAB_ARGS passes more options (e.g. LAB_ARGS="--no-browser --port 8889").
LAB_ARGS ?=
lab: install
	$(BIN)/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

# Style (ruff), the architecture's import contracts (import-linter, see pyproject.toml) and types (mypy).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs .pytest_cache .ruff_cache .mypy_cache .import_linter_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
