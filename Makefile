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

.PHONY: install demo down stack stack-down test lint lock repro clean

# Hash-pinned locks made by `make lock`: LOCK is the runtime set (all the worker image gets),
# DEV_LOCK the test and lint tools.
LOCK := requirements/lock.txt
DEV_LOCK := requirements/dev.txt
PIP_INSTALL := $(PY) -m pip install -q --require-hashes
# $(call LOCKED,pkg): pkg's hash-pinned entry of LOCK, to install it alone. pip comes first
# (older pips mishandle extras in hash-checking mode). torch is locked to its CPU build, which
# lives on the PyTorch index, not PyPI: it is installed next, only when missing, retrying little
# so an unreachable index costs seconds where pip's find-links already holds the wheel.
LOCKED = sed -n '/^$(1)==/,/[^\\]$$/p' $(LOCK)
TORCH_INDEX := https://download.pytorch.org/whl/cpu
TORCH_VERSION := $(shell sed -n 's/^torch==\([^ ]*\).*/\1/p' $(ROOT)/$(LOCK))
# `make lock` runs a pinned uv from a throwaway venv. It keeps the current pins unless the .in
# files demand otherwise (LOCK_FLAGS=--upgrade to move everything). torch comes from the PyTorch
# CPU index, or from TORCH_FIND_LINKS (default: pip's find-links, a local wheel cache) when set.
UV_VERSION := 0.13.9
TORCH_FIND_LINKS ?= $(PIP_FIND_LINKS)
TORCH_SOURCE = $(if $(TORCH_FIND_LINKS),$(addprefix --find-links ,$(TORCH_FIND_LINKS)),--torch-backend cpu)
UV_COMPILE = pip compile -q --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	--custom-compile-command "make lock" $(LOCK_FLAGS)

install: $(STAMP)

# Idempotent: reinstalls only when a lock file or pyproject changes.
$(STAMP): $(LOCK) $(DEV_LOCK) pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP_INSTALL) -r <($(call LOCKED,pip))
	@$(PY) -c 'import importlib.metadata as m; assert m.version("torch") == "$(TORCH_VERSION)"' 2>/dev/null \
	  || $(PIP_INSTALL) --no-deps --retries 1 --timeout 15 --extra-index-url $(TORCH_INDEX) -r <($(call LOCKED,torch))
	$(PIP_INSTALL) -r $(LOCK)
	$(PIP_INSTALL) -r $(DEV_LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: install
	$(PY) -m driftloop.demo up

down:
	@test -x $(PY) && $(PY) -m driftloop.demo down || true

# The loop on a production-shaped stack (Postgres, S3 store, Prefect and MLflow servers), all
# state under .stack/; `make stack-down` stops it.
stack: install
	$(PY) -m driftloop.stack up

stack-down:
	@test -x $(PY) && $(PY) -m driftloop.stack down || true

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check pipelines flows driftloop tests benchmarks

repro: install
	dvc repro

# Regenerate both locks after editing requirements/base.in or requirements/dev.in.
lock:
	@uvenv=$$(mktemp -d) && trap 'rm -rf "$$uvenv"' EXIT \
	  && python3 -m venv "$$uvenv" && "$$uvenv/bin/pip" install -q uv==$(UV_VERSION) \
	  && "$$uvenv/bin/uv" $(UV_COMPILE) $(TORCH_SOURCE) \
	       requirements/base.in -o $(LOCK) \
	  && "$$uvenv/bin/uv" $(UV_COMPILE) requirements/dev.in -o $(DEV_LOCK)

clean: down
	rm -rf .prefect mlruns.db mlartifacts reports models data/raw data/interim data/validated \
	       data/splits data/predictions data/quarantine data/landing/*.parquet dvc-remote .run
