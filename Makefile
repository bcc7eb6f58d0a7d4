# Quickstart: `make run` installs and runs the example job; `make test` installs and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ftprep run examples/recipes/parquet_chat.yaml --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The throughput benchmark (about 15 minutes on 2 cores); writes benchmarks/results.md.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m benchmarks.run --rows 200000 --repeats 3

clean:
	rm -rf $(VENV) out
