# Two commands do all set-up on a fresh machine:
#   make run   - install what is missing, then serve Dibs on $PORT (default 3000)
#   make test  - install what is missing, then run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

run: $(VENV)/.runtime node_modules/.package-lock.json
	$(BIN)/python wsgi.py

test: $(VENV)/.dev node_modules/.package-lock.json
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) node_modules .pytest_cache

# The benchmark (docs/benchmarks.md): the full suite takes about 12 minutes and
# wants a quiet machine; bench-small is the quick configuration CI runs.
.PHONY: bench bench-small

$(VENV)/.bench: requirements.txt requirements-bench.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python -m bench --suite full $(BENCH_ARGS)

bench-small: $(VENV)/.bench
	$(BIN)/python -m bench --suite small $(BENCH_ARGS)
