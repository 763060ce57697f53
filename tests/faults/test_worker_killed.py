"""Worker killed: SIGKILL the Prefect process worker and its flow-run process (with the dvc
and stage processes in its group) while the `train` stage trains the MLP, on a deployed copy
of the project with tiny data.

Prefect leaves such a run Running for good (no process is left to report it), holding the
deployment's concurrency slot; `driftloop.runs.mark_lost_runs` (the demo calls it, and every
demo wait checks the run's process) marks it Crashed. Then: no temp files in models/ or data/,
no new model version and no champion moved; a new worker's run completes, the MLP resumes from
its last epoch checkpoint, and `dvc status` is clean.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from driftloop.runs import mark_lost_runs, read_flow_run
from driftloop.services import process_start, process_tree
from tests.helpers import deploy_project, make_project, run, simulate

pytestmark = pytest.mark.slow
# Tiny and quick, but the MLP trains long enough (small batches, no early stop) to be killed
# between two epochs' checkpoints.
SMALL = {"train": {"xgboost": {"n_estimators": 20, "early_stopping_rounds": 5, "n_jobs": 1},
                   "mlp": {"hidden": [16], "batch_size": 16, "max_epochs": 25, "patience": 25,
                           "threads": 1}},
         "register": {"bootstrap_samples": 50}}
KILL_AFTER_EPOCH_S = 120  # for the first MLP checkpoint of the first run
RUN_S = 300


def temp_files(project) -> list:
    """Files a write left half-done: temp names in models/ and data/ (the MLP checkpoint is
    a finished file by design, renamed into place)."""
    return [p for folder in ("models", "data") for p in (project / folder).rglob("*")
            if p.is_file() and p.name != ".gitignore"
            and (p.name.startswith(".") or "tmp" in p.name.lower())]


def registry(project):
    from mlflow import MlflowClient

    from driftloop import tracking
    from driftloop.config import load_params

    params = load_params(project / "params.yaml")
    tracking.setup(params)
    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{params.project.name}'")
    champion = tracking.current_champion(client, params.project.name)
    return sorted(int(v.version) for v in versions), champion and int(champion.version)


def wait_for(check, what: str, timeout: float):
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"no {what} after {timeout}s"
        time.sleep(0.1)
    return got


def log_line(run_id, text: str) -> str:
    """The first log line of flow run `run_id` holding `text` (logs may land after the end)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    def find():
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        return next((log.message for log in logs if text in log.message), None)

    return wait_for(find, f"log line {text!r}", 15)


@pytest.fixture
def deployed(tmp_path, prefect_api, monkeypatch):
    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "1")
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "INFO")  # the stage's log lines reach the API
    project = make_project(tmp_path, SMALL)
    simulate(project, list(range(4)))
    stack = deploy_project(project, prefect_api.prefect_port)
    yield project, stack
    stack.stop()


def test_a_worker_killed_in_the_train_stage_loses_nothing_and_the_next_run_resumes(deployed):
    from prefect.deployments import run_deployment

    from driftloop.config import load_params
    from driftloop.runs import run_deployment as run_and_wait

    project, stack = deployed
    checkpoint = load_params(project / "params.yaml").path("checkpoint")
    killed = run_deployment("train/weekly", parameters={"trigger": "manual"}, timeout=0)
    wait_for(checkpoint.exists, "MLP checkpoint (the train stage's first epoch)",
             KILL_AFTER_EPOCH_S)

    run_pid = int(read_flow_run(killed.id).infrastructure_pid)
    tree = process_tree(run_pid)
    assert len(tree) >= 3, tree  # the flow run, `dvc repro`, the train stage
    os.killpg(stack.record("worker").pid, signal.SIGKILL)
    os.killpg(run_pid, signal.SIGKILL)  # the worker starts each flow run in a group of its own
    wait_for(lambda: not any(process_start(p) for p in tree), "end of the killed processes", 10)

    # Prefect leaves the run Running; the project's check marks it Crashed, naming the process
    assert read_flow_run(killed.id).state.type.value == "RUNNING"
    assert [r.id for r in mark_lost_runs("train/weekly")] == [killed.id]
    state = read_flow_run(killed.id).state
    assert state.type.value == "CRASHED" and f"pid {run_pid}" in state.message
    assert temp_files(project) == []
    assert registry(project) == ([], None)  # no version registered, no champion moved

    stack.start_worker()
    done = run_and_wait("train/weekly", {"trigger": "manual"}, timeout=RUN_S,
                        worker_gone=stack.worker_gone, local_worker=True)
    assert done.state.is_completed()
    assert log_line(done.id, "mlp: resuming from checkpoint")
    assert not checkpoint.exists() and temp_files(project) == []
    assert registry(project) == ([1], 1)
    status = run(["dvc", "status"], project).stdout
    assert "up to date" in status, status

    # two runs of the deployment at once: one proceeds, the other waits for it (the
    # deployment's concurrency limit, and the pipeline lock inside the flow); nothing new to
    # learn, so both complete without a new version
    from driftloop.runs import wait_until_final

    pair = [run_deployment("train/weekly", parameters={"trigger": "manual"}, timeout=0)
            for _ in range(2)]
    first, second = sorted((wait_until_final(r.id, timeout=RUN_S) for r in pair),
                           key=lambda r: r.start_time)
    assert first.state.is_completed() and second.state.is_completed(), \
        (first.state.message, second.state.message)
    assert second.start_time >= first.end_time, "two training runs overlapped"
    assert registry(project) == ([1], 1) and temp_files(project) == []
