# Every target sets up what it needs: a fresh clone only needs python3 (>= 3.11) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test test-cluster check fmt bench fuzz clean \
	cassandra-start cassandra-stop cassandra-cluster-start cassandra-cluster-stop

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable . --group dev
	touch $(STAMP)

serve: install
	$(BIN)/queuey serve $(ARGS)

check: install
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy

# The Cassandra tests start a single node themselves (tools/cassandra/node.py) and leave it
# running for the next run; `make cassandra-stop` stops it.
test: check
	$(BIN)/pytest -q

# The 3-node Cassandra failure test (about 2 minutes; CI runs it after `make test`).
test-cluster: install
	$(BIN)/pytest -q -m cluster

fmt: install
	$(BIN)/ruff check --fix src tests bench tools
	$(BIN)/ruff format src tests bench tools

# Apache Cassandra 5 from Maven Central (needs Java 17 and Maven), state in .cassandra/.
CASSANDRA := $(BIN)/python tools/cassandra/node.py

cassandra-start: install
	$(CASSANDRA) start

cassandra-stop:
	$(CASSANDRA) stop

cassandra-cluster-start: install
	$(CASSANDRA) start --nodes 3

cassandra-cluster-stop:
	$(CASSANDRA) stop --nodes 3

bench: install
	$(BIN)/python bench/run.py $(ARGS)

# A long fuzz of the API from its OpenAPI document (make test runs a bounded one).
fuzz: install
	$(BIN)/python -m tests.e2e.fuzz $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
