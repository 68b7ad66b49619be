# Everyday commands. `make test` and `make demo` work on a fresh machine: they
# create .venv and install the project before doing anything else.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv lint format test test-long test-fast demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip check
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest -m "not long"

test-long: $(STAMP)
	$(BIN)/python -m pytest -m long; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]  # 5: none left

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not integration"

demo: $(STAMP)
	$(BIN)/vda demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# The GPU claims in one command on a CUDA machine (docs/gpu-check.md), within 8 minutes.
# It installs nothing and runs from the checkout with .venv built: where .venv is missing,
# `make venv gpu-check` builds it first. Options: GPU_CHECK_ARGS="--steps engine --json r.json".
.PHONY: gpu-check
gpu-check:
	$(BIN)/python scripts/gpu_check.py $(GPU_CHECK_ARGS)
