"""Read flow runs from the Prefect API (for the demo summary and the end-to-end tests)."""

from __future__ import annotations

import time
from datetime import datetime


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


def scheduled_runs(deployment: str) -> list:
    """The runs of `flow/deployment` its schedules created (the server's scheduler service),
    by the time they are due."""
    runs = [r for r in deployment_runs(deployment) if r.auto_scheduled]
    return sorted(runs, key=lambda r: r.expected_start_time)


def wait_until_final(run_id, *, timeout: float, poll: float = 2) -> object:
    """The flow run `run_id` once it has reached a final state."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"flow run {run.name} not finished after {timeout:.0f}s; "
                               f"state: {run.state.name if run.state else None}")
        time.sleep(poll)


def wait_for_run(deployment: str, since: datetime, *, trigger: str | None = None,
                 timeout: float = 600, poll: float = 3) -> object:
    """Wait for a run of `deployment` created after `since` (with parameters.trigger ==
    `trigger`, if given) to reach a final state; return it."""
    deadline = time.monotonic() + timeout
    run = None
    while time.monotonic() < deadline:
        runs = [r for r in deployment_runs(deployment, since)
                if trigger is None or r.parameters.get("trigger") == trigger]
        if runs:
            run = runs[0]
            if run.state is not None and run.state.is_final():
                return run
        time.sleep(poll)
    state = run.state.name if run and run.state else "never created"
    raise TimeoutError(f"no finished {deployment} run (trigger={trigger}) after {timeout:.0f}s; "
                       f"last seen: {state}")
