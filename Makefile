# Quickstart: `make run` installs and runs the example job; `make test` installs and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Airflow lives in its own environment (its pins are not ftprep's); the DAG test drives it.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The tests also build the Dataflow job description offline (Beam's GCP client: the dataflow extra)
# and write to S3 and read GCS on loopback servers (the s3 extra; gcsfs comes with dataflow).
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,dataflow,s3]'
	touch $(TEST_STAMP)

$(AIRFLOW_STAMP): pyproject.toml
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -e '.[airflow]'
	touch $(AIRFLOW_STAMP)

run: $(STAMP)
	$(BIN)/ftprep run examples/recipes/parquet_chat.yaml --overwrite

# FTPREP_REQUIRE_DEPLOY=1: the deployment tests fail, not skip, when their environment is missing.
test: $(TEST_STAMP) $(AIRFLOW_STAMP)
	FTPREP_REQUIRE_DEPLOY=1 FTPREP_AIRFLOW_PYTHON=$(abspath $(AIRFLOW_VENV))/bin/python $(BIN)/python -m pytest -q

# The throughput benchmark (about 15 minutes on 2 cores); writes benchmarks/results.md.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m benchmarks.run --rows 200000 --repeats 3

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) out
