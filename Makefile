# Two commands set up and use a fresh clone; both create .venv on first use.
#   make run   - the project's main job
#   make test  - the whole test suite
#   make bench - the benchmarks (docs/benchmarks.md); the learning one against RecurrentPPO
#                when the [peer] extra is installed, ours alone otherwise
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test bench clean-venv

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,bench,ray,minigrid,atari,wandb]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python scripts/train.py --preset tmaze --evaluate

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python scripts/bench_replay.py
	$(BIN)/python scripts/bench_learner.py
	$(BIN)/python scripts/bench_actor.py
	$(BIN)/python scripts/bench_envs.py --num-envs 32
	$(BIN)/python scripts/bench_learning.py --quick $$($(BIN)/python -c "import sb3_contrib" 2>/dev/null || echo --agents ours)

clean-venv:
	rm -rf $(VENV)
