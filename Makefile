# Two doors: `make run` (set up, then the main job) and `make test` (set up, then every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Offline: `make run MNIST_SOURCE=/path/to/folder/with/the/four/idx/files`
MNIST_SOURCE ?=
SOURCE_OPTION := $(if $(MNIST_SOURCE),--source $(MNIST_SOURCE),)

.PHONY: run test test-fast lint clean

# The runtime pins of conda.yaml are the versions the project is tested with: install exactly those.
$(BIN)/.installed: pyproject.toml conda.yaml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	sed -n 's/^ *- \([A-Za-z0-9_.-]*==[^ ]*\)$$/\1/p' conda.yaml > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/pipeline main --arch both $(SOURCE_OPTION)

test: lint
	$(BIN)/pytest

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
