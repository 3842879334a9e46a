# The two commands a user needs: `make demo` and `make test`. Each installs the pinned stack into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test test-fast lint bench clean

install:
	@scripts/install.sh $(VENV)

demo: install
	$(VENV)/bin/fbrec demo

test: install lint
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check fbrec tests benchmarks
	$(VENV)/bin/lint-imports

bench: install
	$(PY) -m benchmarks.run --write

clean:
	rm -rf mlruns demo_bundle .pytest_cache
