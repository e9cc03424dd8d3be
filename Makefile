# Two doors: `make run` (set up, then the main job) and `make test` (set up, then every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Offline: `make run MNIST_SOURCE=/path/to/folder/with/the/four/idx/files`
MNIST_SOURCE ?=
SOURCE_OPTION := $(if $(MNIST_SOURCE),--source $(MNIST_SOURCE),)

.PHONY: run test test-fast lint clean real-data

# The runtime pins of conda.yaml are the versions the project is tested with: install exactly those.
$(BIN)/.installed: pyproject.toml conda.yaml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	sed -n 's/^ *- \([A-Za-z0-9_.-]*==[^ ]*\)$$/\1/p' conda.yaml > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/pipeline main --arch both $(SOURCE_OPTION)

# The slow tests train on real MNIST files: ../shared/data/mnist beside the clone, or the folder
# MNIST_LOCAL_SOURCE names. Without them `make test` stops at once, saying so, unless told to
# skip those tests (SKIP_REAL_DATA=1).
REAL_MNIST := $(or $(MNIST_LOCAL_SOURCE),../shared/data/mnist)

test: real-data lint
	$(BIN)/pytest

real-data:
	@test -n "$(SKIP_REAL_DATA)" -o -f "$(REAL_MNIST)/train-images-idx3-ubyte.gz" || { \
	  echo "make test: no MNIST IDX files in $(REAL_MNIST); set MNIST_LOCAL_SOURCE=/path/to/folder (the four files), or SKIP_REAL_DATA=1 to skip the tests that need them" >&2; \
	  exit 2; }

# The fast tests on both cores (each test has its own folder and stores, so they run apart).
test-fast: lint
	$(BIN)/pytest -m "not slow" -n 2

# The linter, the formatter's check and the type checker (also the pre-commit hooks).
lint: $(BIN)/.installed
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) mlflow.db mlruns checkpoints
