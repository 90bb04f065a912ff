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
	$(BIN)/ruff check src tests bench tools examples
	$(BIN)/ruff format --check src tests bench tools examples
	$(BIN)/mypy

# The Cassandra tests start a single node themselves (tools/cassandra/node.py); `make test`
# stops it at the end unless it was running before (or KEEP_CASSANDRA=1: the next run then
# starts faster; `make cassandra-stop` stops it).
# Every test: the ones of pytest's default selection, then the 3-node Cassandra failure test.
test: check
	@was_up=$$($(CASSANDRA) status | grep -c ' up ' || true); status=0; \
	$(BIN)/pytest -q && $(BIN)/pytest -q -m cluster || status=$$?; \
	if [ "$$was_up" = 0 ] && [ -z "$(KEEP_CASSANDRA)" ]; then $(CASSANDRA) stop; fi; \
	exit $$status

# The 3-node Cassandra failure test alone (about 2.5 minutes).
test-cluster: install
	$(BIN)/pytest -q -m cluster

fmt: install
	$(BIN)/ruff check --fix src tests bench tools examples
	$(BIN)/ruff format src tests bench tools examples

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

# The sqlite run, then the same scenarios on the single Cassandra node (100,000 queues for
# the listing: creating a queue is a lightweight transaction, ~1,800/s on this machine), then
# the short stream scenarios, beside Nchan where it compares (bench/streams.py --suite: nginx
# with libnginx-mod-nchan; STREAM_ARGS="--server-cmd ..." runs another build).
bench: install
	$(BIN)/python bench/run.py $(ARGS)
	$(BIN)/python bench/run.py --backend cassandra --queues 100000 \
		--output .bench/cassandra/results.json $(ARGS)
	$(BIN)/python bench/streams.py --suite $(STREAM_ARGS)

# A long fuzz of the API from its OpenAPI document (make test runs a bounded one).
fuzz: install
	$(BIN)/python -m tests.e2e.fuzz $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
