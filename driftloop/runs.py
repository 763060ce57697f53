"""Read and wait for flow runs on the Prefect API (the demo and the end-to-end tests).

Every wait has a timeout and names what it waited for; it also stops early when the run can
never finish: no worker left to start it, or its process gone while the API still says
Running (a killed worker leaves it so; Prefect itself never notices), which it then marks
Crashed so its concurrency slot is freed and the UI tells the truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from driftloop.services import SAME_START_S, process_start

T = TypeVar("T")
WAITING_STATES = ("SCHEDULED", "PENDING")


class WaitFailed(RuntimeError):
    """A wait that can never end well; the message names what it waited for and why."""


def poll_until(check: Callable[[], T | None], *, what: str | Callable[[], str], timeout: float,
               poll: float, stuck: Callable[[], str | None] = lambda: None,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `check` until it returns a value. Raise WaitFailed as soon as `stuck()` says why it
    never will, TimeoutError after `timeout` seconds; both name `what`."""
    deadline = clock() + timeout
    while True:
        got = check()
        if got is not None:
            return got
        name = what() if callable(what) else what
        if (why := stuck()) is not None:
            raise WaitFailed(f"stopped waiting for {name}: {why}")
        if clock() >= deadline:
            raise TimeoutError(f"gave up waiting for {name} after {timeout:.0f}s")
        sleep(poll)


def why_stuck(state: str, *, worker_gone: str | None, process_gone: str | None) -> str | None:
    """Why a flow run in state type `state` can never reach a final state (pure), or None while
    it still can: waiting with no worker to start it, or started with its process gone."""
    if process_gone is not None and state != "SCHEDULED":
        return f"it is {state.title()} but {process_gone}"
    if worker_gone is not None and state in WAITING_STATES:
        return f"it is {state.title()} and no worker will start it: {worker_gone}"
    return None


def flow_process_gone(run) -> str | None:
    """For a run whose worker runs on this machine: why the process the worker started for it
    (its infrastructure pid) is gone, or None when it is alive or not known yet. A pid that
    now names a process started after the run did is someone else's."""
    pid = str(run.infrastructure_pid or "")
    if not pid.isdigit():
        return None
    started = process_start(int(pid))
    if started is None:
        return f"its flow-run process (pid {pid}) is gone"
    # a Running run's process started before the run did; a later one reuses the pid
    if run.start_time is not None and started > run.start_time.timestamp() + SAME_START_S:
        return f"its flow-run process (pid {pid}) is gone (that pid is another process now)"
    return None


def read_flow_run(run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def mark_crashed(run_id, message: str) -> None:
    """Force the run to Crashed: its deployment concurrency slot is released with it."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Crashed(message=message), force=True)


def wait_for_flow_run(run_id, *, timeout: float, poll: float = 2,
                      worker_gone: Callable[[], str | None] = lambda: None,
                      local_worker: bool = False, read: Callable = read_flow_run,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> object:
    """The flow run `run_id` once it is final. Stops early (WaitFailed) when `worker_gone()`
    reports the worker dead while the run waits for it, or, with `local_worker` (the worker
    runs on this machine, so its pids are ours to check), when the run's process is gone: that
    run is marked Crashed first."""
    seen: dict = {}

    def check():
        seen["run"] = run = read(run_id)
        return run if run.state is not None and run.state.is_final() else None

    def stuck() -> str | None:
        run = seen["run"]
        state = run.state.type.value if run.state is not None else "SCHEDULED"
        gone = flow_process_gone(run) if local_worker else None
        why = why_stuck(state, worker_gone=worker_gone() if state in WAITING_STATES else None,
                        process_gone=gone)
        if why is not None and gone is not None:
            mark_crashed(run.id, f"marked Crashed by driftloop: {gone}")
        return why

    def what() -> str:
        run = seen.get("run")
        name = run.name if run is not None else run_id
        state = run.state.name if run is not None and run.state is not None else "unknown"
        return f"flow run {name} ({run_id}) to finish; last state {state}"

    return poll_until(check, what=what, timeout=timeout, poll=poll, stuck=stuck, clock=clock,
                      sleep=sleep)


def run_deployment(name: str, parameters: dict | None = None, *, timeout: float,
                   worker_gone: Callable[[], str | None] = lambda: None,
                   local_worker: bool = False, poll: float = 1) -> object:
    """Start a run of deployment `flow/deployment` and wait for it (see wait_for_flow_run);
    a run that ends in any state but Completed is an error naming it and its message."""
    from prefect.deployments import run_deployment as start

    run = start(name, parameters=parameters or {}, timeout=0)
    run = wait_for_flow_run(run.id, timeout=timeout, poll=poll, worker_gone=worker_gone,
                            local_worker=local_worker)
    if not run.state.is_completed():
        raise RuntimeError(f"{name} run {run.name} ended {run.state.name}: {run.state.message}")
    return run


def deployment_runs(deployment: str, since: datetime | None = None) -> list:
    """Flow runs of `flow/deployment`, oldest first, created after `since`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])), limit=200)
    runs = [r for r in runs if since is None or r.created >= since]
    return sorted(runs, key=lambda r: r.created)


def mark_lost_runs(deployment: str) -> list:
    """Mark Crashed the runs of `deployment` that the API shows started (Pending or Running)
    whose process on this machine is gone, e.g. after the worker was killed: Prefect leaves
    them Running for good, holding the deployment's concurrency slot. Only for a work pool
    whose worker runs on this machine. Returns the runs it marked."""
    lost = []
    for run in deployment_runs(deployment):
        if run.state is None or run.state.type.value not in ("PENDING", "RUNNING"):
            continue
        if (gone := flow_process_gone(run)) is not None:
            mark_crashed(run.id, f"marked Crashed by driftloop: {gone}")
            lost.append(run)
    return lost


def scheduled_runs(deployment: str) -> list:
    """The runs of `flow/deployment` its schedules created (the server's scheduler service),
    by the time they are due."""
    runs = [r for r in deployment_runs(deployment) if r.auto_scheduled]
    return sorted(runs, key=lambda r: r.expected_start_time)


def wait_until_final(run_id, *, timeout: float, poll: float = 2) -> object:
    """The flow run `run_id` once it has reached a final state."""
    return wait_for_flow_run(run_id, timeout=timeout, poll=poll)


def wait_for_run(deployment: str, since: datetime, *, trigger: str | None = None,
                 timeout: float = 600, poll: float = 3,
                 worker_gone: Callable[[], str | None] = lambda: None,
                 local_worker: bool = False) -> object:
    """Wait for a run of `deployment` created after `since` (with parameters.trigger ==
    `trigger`, if given) to reach a final state; return it."""
    deadline = time.monotonic() + timeout

    def created():
        runs = [r for r in deployment_runs(deployment, since)
                if trigger is None or r.parameters.get("trigger") == trigger]
        return runs[0] if runs else None

    run = poll_until(created, what=f"a {deployment} run (trigger={trigger}) to be created",
                     timeout=timeout, poll=poll)
    return wait_for_flow_run(run.id, timeout=max(deadline - time.monotonic(), 0), poll=poll,
                             worker_gone=worker_gone, local_worker=local_worker)
