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

# One pytest-xdist worker per core (at most 4); `test` hands out whole files (the e2e module fixtures,
# trained runs, are made once), `test-fast` single tests (the unit tests have no costly fixtures, so
# they balance better). tests/conftest.py gives each worker its share of the cores as torch threads. Python may
# cache byte code (and pytest its rewritten asserts) even where PYTHONDONTWRITEBYTECODE is set:
# every test starts Python processes that would otherwise recompile cvexp each time.
JOBS ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0))))" 2>/dev/null || echo 2)
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -n $(JOBS) --durations=15

test: setup
	$(PYTEST) --dist loadfile $(ARGS)

test-fast: setup
	$(PYTEST) --dist load tests/unit $(ARGS)

clean-venv:
	rm -rf $(VENV)
