# Two commands do all the set-up on a fresh machine:
#   make dev    installs hookline in .venv and runs `hookline dev`
#   make test   installs it with the test tools and runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install dev test test-fast lint schema bench clean

$(BIN)/hookline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $@

install: $(BIN)/hookline

dev: install
	$(BIN)/hookline dev

test: install
	$(BIN)/pytest

# the edit loop: everything but the slow, chaos and browser tests (CI runs them all)
test-fast: install
	$(BIN)/pytest -q -m "not slow and not chaos and not browser"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# make bench BENCH_ARGS="--quick --only fanout,drain"
# migrations/schema.sql: the schema the migrations make, read back from a scratch database
# (a test compares it with what they make)
schema: install
	$(BIN)/python -m hookline.schema_snapshot $${HOOKLINE_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .hookline .mypy_cache .ruff_cache .pytest_cache
