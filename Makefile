# Two doors: `make run` (set up, then the main job) and `make test` (set up, then every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Offline: `make run MNIST_SOURCE=/path/to/folder/with/the/four/idx/files`
MNIST_SOURCE ?=
SOURCE_OPTION := $(if $(MNIST_SOURCE),--source $(MNIST_SOURCE),)

.PHONY: run test lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/pipeline download $(SOURCE_OPTION)
	$(BIN)/pipeline train --arch mlp
	$(BIN)/pipeline train --arch lstm

test: $(BIN)/.installed
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline tests bench

clean:
	rm -rf $(VENV) mlflow.db mlruns checkpoints
