# Local development: `make run` and `make test` work on a fresh machine
# with Java 17+, Maven and Python 3.11+ (see README.md).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install up down topics run produce test test-unit lint bench profile clean

$(BIN)/clickstream: pyproject.toml setup.py statestore/_hll.c services/processor/_columns.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/clickstream

# `make up REDIS_MODE=cluster`: a local Redis Cluster (3 masters + 3 replicas, ports
# 7000-7005) instead of the single Redis; `make down` stops whichever runs.
up:
	deploy/local/up.sh

down:
	deploy/local/down.sh

topics: install up
	clickstream topics create

run: topics
	deploy/local/run.sh

produce: topics
	clickstream produce

# The benchmark suite against the local stack: prints one table of figures.
# BENCH_ARGS passes flags: --suite throughput (replicas 1-3, Redis CPU, hot slot) or
# --suite takeover (kill-to-processing per group protocol).
BENCH_ARGS ?=
bench: topics
	clickstream bench $(BENCH_ARGS)

# The HTTP API under wrk on loopback: /v1/windows/latest and a 24-hour rollup (README
# "HTTP API"); API_BENCH_* settings (python -m load.api_bench --help) change the run.
.PHONY: api-bench
api-bench: install
	$(BIN)/python -m load.api_bench

# cProfile of one processor over a fresh dataset: top functions by own time.
profile: topics
	clickstream profile

lint: install
	ruff check services statestore load tests

test-unit: install
	pytest tests/unit -q $(PYTEST_ARGS)

test: install lint
	pytest -q -rs $(PYTEST_ARGS)

clean: down
	rm -rf .local $(VENV) .pytest_cache .ruff_cache

# Kubernetes deployment checks: helm lint --strict, helm template for each value set in
# charts/clickstream/ci/ validated offline against the Kubernetes schemas, the replica
# check, hadolint, and dashboard/alert metric names. deploy/k8s-tools.sh installs helm
# (go install) and the validators once into ~/.cache/clickstream/tools. The same tests run
# in `make test` (tests/deploy).
.PHONY: chart-check
chart-check: install
	deploy/k8s-tools.sh >/dev/null
	pytest tests/deploy -q -rs $(PYTEST_ARGS)

# ---- load and chaos (load/, README "Load and chaos") -------------------------------
# `make load`: generate the default dataset once, then replay it into EVENTS_TOPIC at
# full speed; LOAD_ARGS passes flags (--rate 50000, --speed 1 --shift-to-now, ...).
# `make chaos`: the local chaos run; CHAOS_ARGS passes flags (--redis restart, ...).
LOAD_DATASET ?= data/load-default.jsonl.gz
LOAD_ARGS ?=
CHAOS_ARGS ?=

.PHONY: load chaos

$(LOAD_DATASET): | install
	clickstream load generate --dataset $@

load: topics $(LOAD_DATASET)
	clickstream load replay --dataset $(LOAD_DATASET) $(LOAD_ARGS)

chaos: topics
	clickstream chaos $(CHAOS_ARGS)
