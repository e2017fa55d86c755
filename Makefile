# Set-up and the two everyday commands. `make train` and `make test` each create the virtual
# environment on first use (torch pinned to the CPU build first, so no CUDA build is pulled).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
TORCH ?= torch==2.13.0
# One BLAS thread per process: the suite runs in two pytest workers on 2 cores.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg

.PHONY: setup train test lint bench clean docs docs-fast
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

train: setup
	$(VENV)/bin/tractable train

test: setup
	# the browser tests of human-eval drive Debian's Chromium through its chromedriver
	(command -v chromium && command -v chromedriver) >/dev/null || \
		(apt-get update && apt-get install -y chromium chromium-driver)
	$(TEST_ENV) $(PY) -m pytest -n 2 --dist loadfile -p no:cacheprovider
	$(VENV)/bin/ruff check src tests benchmarks docs
	$(MAKE) docs

# The documentation site (docs/_build/html/index.html), built from scratch in strict mode:
# every warning (a broken reference or link, a malformed docstring, a failing tutorial) fails
# it, and every tutorial in docs/examples/ is executed. `make docs-fast` skips the tutorials.
SPHINX := $(TEST_ENV) $(PY) -m sphinx -b html -n -W --keep-going -q
DOCS_OUT := docs/_build docs/api docs/tutorials docs/_generated docs/sg_execution_times.rst

$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed
	rm -rf $(DOCS_OUT)
	$(SPHINX) docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

docs-fast: $(VENV)/.docs-installed
	rm -rf $(DOCS_OUT)
	TRACTABLE_DOCS_NO_TUTORIALS=1 $(SPHINX) docs docs/_build/html

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks docs

bench: setup
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/flows.py

clean:
	rm -rf $(VENV) runs $(DOCS_OUT)
