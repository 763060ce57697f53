# driftloop: the two commands a user needs are `make demo` and `make test`.
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Offline and quiet: every library's telemetry off, thread counts sized for small machines.
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export OMP_WAIT_POLICY := PASSIVE
export PREFECT_HOME := $(ROOT)/.prefect
export PATH := $(VENV)/bin:$(PATH)

.PHONY: install demo down test lint lock repro clean

install: $(STAMP)

# Idempotent: reinstalls only when the lock file or pyproject changes.
$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/lock.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: install
	$(PY) -m driftloop.demo up

down:
	@test -x $(PY) && $(PY) -m driftloop.demo down || true

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check pipelines flows driftloop tests benchmarks

repro: install
	dvc repro

# Regenerate the lock after editing requirements/base.in (torch stays on the cached 2.13.0 wheel).
lock:
	python3 -m venv /tmp/driftloop-lock && /tmp/driftloop-lock/bin/pip install -q -r requirements/base.in
	/tmp/driftloop-lock/bin/pip freeze | sed 's/^torch==\(.*\)+cpu/torch==\1/' > requirements/lock.txt

clean: down
	rm -rf .prefect mlruns.db mlartifacts reports models data/raw data/interim data/validated \
	       data/splits data/predictions data/quarantine data/landing/*.parquet dvc-remote .run
