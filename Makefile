# Set-up and entry points. `make test` and `make demo` create .venv when it is missing or stale.
SHELL := /bin/bash
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.specdm-installed
PYTEST_ARGS ?=

# A Python >= 3.12, from PATH or from pyenv.
PYTHON ?= $(shell for p in python3.12 python3.13 python3; do \
	  c=$$(command -v $$p 2>/dev/null) && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$c; exit 0; }; \
	done; \
	r=$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv); \
	for c in $$(ls -d $$r/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -V); do echo $$c; exit 0; done)

.PHONY: install test test-all lint demo clean

$(STAMP): pyproject.toml constraints.txt
	@if [ -z "$(PYTHON)" ]; then echo "error: no Python >= 3.12 on PATH or in pyenv; install one (e.g. 'pyenv install 3.12') or run 'make PYTHON=/path/to/python3.12'" >&2; exit 1; fi
	@if [ ! -x $(VPY) ] || ! $(VPY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
		echo "creating $(VENV) with $(PYTHON)"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); fi
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -c constraints.txt -e '.[test,dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VPY) -m pytest -q $(PYTEST_ARGS)

test-all: $(STAMP)
	$(VPY) -m pytest -q -m '' $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check torchgeo_specdm tests benchmarks
	$(VENV)/bin/ruff check --no-fix torchgeo_specdm tests benchmarks
	$(VENV)/bin/mypy torchgeo_specdm benchmarks

demo: $(STAMP)
	$(VENV)/bin/specdm demo --out demo_output

clean:
	rm -rf $(VENV) demo_output lightning_logs .mypy_cache .ruff_cache .pytest_cache
