# The two commands: `make demo` runs the platform end to end, `make test` runs the suite.
# Both install what is missing first (infra/setup.sh is idempotent and fast when nothing changed).
VENV := .venv
BIN := $(VENV)/bin
export JAVA_HOME := $(shell bash infra/java_home.sh 2>/dev/null)
export PYSPARK_PYTHON := $(abspath $(BIN)/python)

.PHONY: setup setup-test demo test test-fast test-e2e ui bench bench-consistency bench-feast check clean cluster-up cluster-down cluster-demo

setup:
	@bash infra/setup.sh

setup-test:  # the platform plus the `test` extra (pytest, pytest-timeout, playwright)
	@bash infra/setup.sh --with-tests

demo: setup
	$(BIN)/featctl demo

# Two workers (tests/conftest.py groups the modules): the suite waits on JVMs and servers a third of its time.
PYTEST_PARALLEL := -n 2 --dist loadscope --no-loadscope-reorder --durations=25

test: setup-test
	$(BIN)/pytest $(PYTEST_PARALLEL)

test-fast: setup-test
	$(BIN)/pytest $(PYTEST_PARALLEL) -m "not slow"

test-e2e: setup-test
	$(BIN)/pytest -m e2e

ui: setup
	$(BIN)/featctl ui

# The cluster profile on this machine: Spark standalone, a Flink session cluster and Redis Cluster on loopback
# (featctl cluster up writes .data/cluster/profile.yaml); `make cluster-demo` runs the demo on them.
CLUSTER_PROFILE := $(abspath .data/cluster/profile.yaml)

cluster-up: setup
	$(BIN)/featctl cluster up

cluster-down:
	$(BIN)/featctl cluster down

cluster-demo: setup
	FP_PROFILE=$(CLUSTER_PROFILE) $(BIN)/featctl demo

bench: setup
	$(BIN)/python benchmarks/publish.py
	$(BIN)/python benchmarks/stream.py
	$(BIN)/python benchmarks/stream_bootstrap.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/get_features_latency.py
	$(BIN)/python benchmarks/training_set.py
	$(BIN)/python benchmarks/quality_gate.py
	$(BIN)/python benchmarks/catalog.py
	$(BIN)/python benchmarks/scale.py
	$(MAKE) bench-consistency
	$(MAKE) bench-feast

# Batch and stream over two days of the demo-size site (120k upvotes): every group's values compared, and how
# long the bounded replays take (the suite proves the same on the `small` site).
CONSISTENCY_DIR := $(abspath .data/bench-consistency)

bench-consistency: setup
	FP_DATA_DIR=$(CONSISTENCY_DIR) $(BIN)/featctl events generate --start 2026-01-01 --end 2026-01-02 --size demo
	FP_DATA_DIR=$(CONSISTENCY_DIR) $(BIN)/featctl consistency --all --ds 2026-01-02

# Ours beside Feast on the same data set in one run (Feast in its own venv under .data/feast, wrk from apt).
bench-feast: setup
	@bash benchmarks/feast/setup.sh
	$(BIN)/python benchmarks/versus_feast.py

clean:
	rm -rf .data
