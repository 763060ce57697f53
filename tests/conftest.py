"""Shared fixtures; the environment and helpers live in tests/helpers.py."""

from __future__ import annotations

import os
import shutil

import pytest

from driftloop.services import Stack
from tests.helpers import _HOME, _PREFECT_PORT, BIN, free_port


@pytest.fixture(autouse=True)
def _no_inherited_mlflow_store():
    """Each test's project uses its own MLflow store: no URI may leak from one test to the next."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def prefect_api():
    """A real `prefect server start` for the session, on a free port."""
    stack = Stack(_HOME / "stack", prefect_port=_PREFECT_PORT, mlflow_port=free_port())
    stack.root.mkdir(parents=True, exist_ok=True)
    stack.env = lambda: {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    stack.start_prefect()
    yield stack
    stack.stop()


def pytest_collection_modifyitems(config, items):
    from driftloop.learn.devices import cuda_visible

    if not cuda_visible():
        skip = pytest.mark.skip(reason="no CUDA device visible")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("DRIFTLOOP_KEEP_TEST_HOME"):
        print(f"\ntest home kept: {_HOME}")
        return
    shutil.rmtree(_HOME, ignore_errors=True)
