# Two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Plugin distributions installed beside the core, found through their entry points.
CONTRIB := contrib/envfence-slack contrib/envfence-acme

.PHONY: demo test venv clean dist

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(CONTRIB))
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "envfence needs Python 3.11 or newer; run make PYTHON=python3.11 ...")'
	@# A venv without pip (Debian without python3-venv) is removed, so the next try starts clean.
	test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "cannot create $(VENV): install your Python's venv module (Debian: apt install python3-venv)"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs]' $(addprefix -e ,$(CONTRIB))
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python contrib/demo-project/demo.py

# Work-stealing: a worker that runs out of tests takes some of another's, so the run ends when the work does.
# Two workers per core: most tests wait on the processes and servers they start, and a second worker
# uses the core meanwhile (on 2 cores: 232 s with one worker per core, 192 s with two). TEST_WORKERS=N overrides.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(2 * len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2 * (os.cpu_count() or 1))')
test: $(STAMP)
	@# The tests start envfence in a few thousand processes: its modules are compiled once, here, and not in
	@# each of those processes where the environment says PYTHONDONTWRITEBYTECODE (compileall writes regardless).
	$(BIN)/python -m compileall -q core plugins contrib >/dev/null
	@# The docs site's `mkdocs build --strict` is one of the tests (tests/docs/conftest.py builds it once for all).
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# The contenders go into .venv through the `bench` extra, beside envfence, never into its dependencies.
$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

.PHONY: bench
bench: $(VENV)/.bench
	$(BIN)/python -m benchmarks --write

# A wheel in dist/ to install envfence where there is no checkout: pip install dist/envfence-*.whl
dist: $(STAMP)
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .
	@ls dist/envfence-*.whl

clean:
	rm -rf $(VENV) .pytest_cache dist
