# One command each: `make demo` (set up + train/test on demo data), `make test` (set up + test suite).
# Everything lives in .venv; the first call installs, later calls reuse it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cvexp-installed

.PHONY: setup demo test test-fast clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	# this machine's torch pair (see README: other machines may use any torch 2.2-2.14 build)
	$(BIN)/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/python -m cvexp $(ARGS)

test: setup
	$(BIN)/python -m pytest -q --durations=15 $(ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q --durations=15 tests/unit $(ARGS)

clean-venv:
	rm -rf $(VENV)
