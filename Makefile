# The two commands of the README: `make run` (the demo on the embedded default) and `make test`.
# Each prepares, once, what it needs on a fresh machine: .venv, the Delta jars, an Airflow home.
SHELL := /bin/bash
PYTHON ?= python3
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
JARS := $(ROOT)/.jars
CHROMIUM := /usr/bin/chromium

export AGRILAKE_HOME ?= $(ROOT)
export AIRFLOW_HOME ?= $(ROOT)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER ?= $(ROOT)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
export AIRFLOW__CORE__UNIT_TEST_MODE ?= False
export SPARK_LOCAL_IP ?= 127.0.0.1
export PATH := $(BIN):$(PATH)

.PHONY: run test setup venv jars guard airflow-home browser consumer lint bench clean

run: setup
	$(BIN)/agrilake demo

test: setup browser consumer
	bash infra/run_tests.sh

setup: venv jars guard airflow-home

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml setup.py infra/constraints.txt
	@echo ">> creating $(VENV) and installing agrilake (first time: ~1-3 min)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on this project's CI machines) nothing is
	# ever cached, and every Airflow task, Spark worker and CLI call would compile Airflow, GX and pandas
	# from source again (import great_expectations: 18 s without .pyc, 6.5 s with).
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c infra/constraints.txt -e '.[dev]'
	$(BIN)/uv pip check --python $(BIN)/python
	touch $@

# A consumer's own tools (datacontract-cli), apart from agrilake's venv as a bank's would be: the tests
# check exported datasets with them.
CONSUMER_VENV := $(ROOT)/.venv-consumer
consumer: $(CONSUMER_VENV)/.installed
$(CONSUMER_VENV)/.installed: infra/consumer-requirements.txt $(VENV)/.installed
	@echo ">> creating $(CONSUMER_VENV) with the consumer's tools (datacontract-cli)"
	test -x $(CONSUMER_VENV)/bin/python || $(PYTHON) -m venv $(CONSUMER_VENV)
	$(BIN)/uv pip install -q --python $(CONSUMER_VENV)/bin/python -r infra/consumer-requirements.txt
	$(CONSUMER_VENV)/bin/python infra/install_duckdb_extensions.py
	touch $@

jars: $(JARS)/.fetched
$(JARS)/.fetched: infra/jars/pom.xml
	@echo ">> fetching the Delta jars from Maven Central into $(JARS)"
	@command -v mvn >/dev/null || { echo "Maven (mvn) is needed to fetch the Delta jars: apt-get install maven"; exit 1; }
	mkdir -p $(JARS)
	mvn -q -B -f infra/jars/pom.xml dependency:copy-dependencies -DoutputDirectory=$(JARS) \
	    -DexcludeTransitive=true -DincludeScope=runtime
	touch $@

# The read-only guard of the analyst sessions (a Spark session extension, infra/guard): compiled against
# the venv's own Spark jars, so nothing is downloaded and it always matches the Spark that loads it.
GUARD_SRC := $(shell find infra/guard -name '*.java')
guard: $(JARS)/agrilake-readonly-guard.jar
$(JARS)/agrilake-readonly-guard.jar: $(GUARD_SRC) $(VENV)/.installed
	@command -v javac >/dev/null || { echo "javac (a JDK 17) is needed to build infra/guard: apt-get install openjdk-17-jdk-headless"; exit 1; }
	rm -rf $(ROOT)/build/guard && mkdir -p $(ROOT)/build/guard $(JARS)
	javac -nowarn --release 17 -cp "$$($(BIN)/python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')/*" \
	    -d $(ROOT)/build/guard $(GUARD_SRC)
	jar cf $@ -C $(ROOT)/build/guard .

# Delta on S3 (infra/compose.yaml, docs/deployment.md): hadoop-aws + the AWS SDK bundle (~600 MB).
jars-s3a: $(JARS)/.fetched-s3a
$(JARS)/.fetched-s3a: infra/jars/s3a/pom.xml
	mkdir -p $(JARS)
	mvn -q -B -f infra/jars/s3a/pom.xml dependency:copy-dependencies -DoutputDirectory=$(JARS) \
	    -DexcludeTransitive=true -DincludeScope=runtime
	touch $@

airflow-home: $(AIRFLOW_HOME)/.migrated
$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	@echo ">> preparing the Airflow home $(AIRFLOW_HOME) (SQLite)"
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || { tail -20 $(AIRFLOW_HOME)/migrate.log; exit 1; }
	touch $@

# Headless Chromium renders the HTML report in tests/integration/test_report.py. Only `make test` installs
# it, once, and only where apt-get exists; without it that test skips and says so.
browser: $(CHROMIUM)
$(CHROMIUM):
	@if command -v apt-get >/dev/null; then \
	    echo ">> installing Debian's chromium (headless rendering test of the report)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
	        || echo ">> could not install chromium (root needed?): the report rendering test will skip"; \
	else echo ">> no apt-get: chromium not installed, the report rendering test will skip"; fi

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python -m agrilake.devdata.bench.pipeline --scales 1 10 --days 7

clean:
	rm -rf data .airflow .pytest_cache spark-warehouse
