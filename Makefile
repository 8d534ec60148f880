# Two commands set up and use a fresh clone; both create .venv on first use.
#   make run   - the project's main job
#   make test  - the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test bench clean-venv

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,bench,ray,minigrid]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python scripts/train.py --preset tmaze --evaluate

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
