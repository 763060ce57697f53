"""Fault: two trainings at once. While a train flow runs, a second direct flow call, a stage
run by hand and `dvc repro` in a shell each stop with a message naming the holder; the
running flow finishes with outputs of its own run only. Real DVC in a real git repo, real
MLflow (SQLite), a real Prefect API, on tiny data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from driftloop.lock import LockBusy, hold, read_holder
from tests.helpers import BIN, make_project, run, simulate

FLOW = """
import sys
from flows.train import train
state = train(trigger="schedule", return_state=True)
print("STATE", state.type.value, state.message)
sys.exit(0 if state.is_completed() else 1)
"""


def test_a_held_lock_names_its_holder_and_lets_its_token_through(tmp_path):
    path = tmp_path / "pipeline.lock"
    with hold(path, "train flow run a") as holder:
        with pytest.raises(LockBusy, match=r"train flow run b cannot start: train flow run a "
                                           rf"\(pid {os.getpid()} on .*\) holds .*pipeline.lock"):
            with hold(path, "train flow run b"):
                pass
        with hold(path, "stage 'split' (dvc repro)", token=holder.token) as same:
            assert same == holder  # a stage started by the holder proceeds under its lock
    assert read_holder(path) is None  # released and cleared
    with hold(path, "train flow run b") as other:
        assert other.what == "train flow run b"


def test_a_waiter_gets_the_lock_when_the_holder_lets_go(tmp_path):
    path = tmp_path / "pipeline.lock"
    taken, release = threading.Event(), threading.Event()

    def first():
        with hold(path, "first"):
            taken.set()
            release.wait(5)

    t = threading.Thread(target=first)
    t.start()
    taken.wait(5)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    with hold(path, "second", wait_s=10) as h:
        assert h.what == "second" and 0.3 < time.monotonic() - started < 5
    t.join()


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_api):
    project = make_project(tmp_path_factory.mktemp("lock"), {
        "concurrency": {"train_wait_s": 1, "dvc_lock_retries": 4},
        "services": {"backoff_s": 0.5}, "train": {"candidates": ["xgboost"]}})
    simulate(project, list(range(6)))
    return project


def wait_for_holder(path, flow: subprocess.Popen, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = read_holder(path)
        if holder is not None and holder.what.startswith("train flow run"):
            return holder
        assert flow.poll() is None, flow.communicate()[0][-3000:]
        time.sleep(0.2)
    raise AssertionError(f"the train flow never took {path}")


@pytest.mark.slow
def test_while_a_train_flow_runs_other_trainings_stop_naming_it(project):
    from flows.train import train

    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "DRIFTLOOP_PARAMS": str(project / "params.yaml")}
    flow = subprocess.Popen([sys.executable, "-c", FLOW], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        holder = wait_for_holder(project / ".run/locks/pipeline.lock", flow)
        assert holder.pid == flow.pid

        # a second direct flow call waits train_wait_s, then fails naming the running one
        os.environ["DRIFTLOOP_PARAMS"] = str(project / "params.yaml")
        try:
            state = train(trigger="drift", reason="a second training", return_state=True)
        finally:
            os.environ.pop("DRIFTLOOP_PARAMS", None)
        assert state.is_failed()
        assert f"{holder.what} (pid {flow.pid}" in state.message and "after waiting 1 s" in \
            state.message, state.message

        # a stage by hand stops at once, naming it, with no traceback
        stage = run(["python", "-m", "pipelines.split"], project, check=False)
        assert stage.returncode == 1 and holder.what in stage.stderr, stage.stderr
        assert "Traceback" not in stage.stderr

        # `dvc repro` in a shell stops: at our lock between the flow's stages, or at DVC's
        # own locks (naming the flow's dvc process) while one runs
        repro = run(["dvc", "repro"], project, check=False)
        out = repro.stdout + repro.stderr
        assert repro.returncode != 0, out[-3000:]
        assert any(m in out for m in (holder.what, "Unable to acquire lock", "is being blocked by")), \
            out[-3000:]
        assert flow.poll() is None  # the running flow is not disturbed

        log, _ = flow.communicate(timeout=400)
    finally:
        if flow.poll() is None:
            flow.kill()
    assert flow.returncode == 0, log[-4000:]

    # the outputs are the running flow's own, in one consistent chain
    assert "up to date" in run(["dvc", "status"], project).stdout
    train_report = json.loads((project / "reports/train/metrics.json").read_text())
    decision = json.loads((project / "reports/register/decision.json").read_text())
    assert decision["run_id"] == train_report["run_id"] and decision["version"] == 1
    assert decision["trigger"] == "schedule"  # the second call never wrote its trigger
    assert read_holder(project / ".run/locks/pipeline.lock") is None  # released


LEAVE = """
import atexit, sys, threading, time
from driftloop.lock import leave

done = []
worker = threading.Thread(target=lambda: (time.sleep(0.3), done.append(1)))  # not a daemon
worker.start()
atexit.register(lambda: print("atexit ran after the thread:", done == [1]))
print("buffered line", end="")
leave(3)
"""


def test_leave_joins_threads_runs_exit_handlers_and_flushes_before_its_exit_code():
    proc = subprocess.run([sys.executable, "-c", LEAVE], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "buffered lineatexit ran after the thread: True\n"
