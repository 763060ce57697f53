"""End to end: the schedules of prefect.yaml fire. A copy of the project whose train/weekly
schedule is a one-minute cron is deployed to a real `prefect server`: its scheduler service
creates the runs (a scheduler that cannot work, e.g. with an SQLAlchemy it does not support,
creates none and says nothing) and a process worker completes the first one on time."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import yaml

from tests.helpers import ROOT, deploy_project, make_project, simulate

pytestmark = pytest.mark.slow
EVERY_MINUTE = "* * * * *"
TRAIN = "flows/train.py:train"
LATE_S = 90  # a run may start this long after it is due (worker poll, process start)


def every_minute(prefect_yaml) -> None:
    """train/weekly on a one-minute cron; the other schedules off (they need a champion)."""
    spec = yaml.safe_load(prefect_yaml.read_text())
    for dep in spec["deployments"]:
        for schedule in dep["schedules"]:
            if dep["entrypoint"] == TRAIN:
                schedule["cron"] = EVERY_MINUTE
            else:
                schedule["active"] = False
    prefect_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))


def test_every_deployment_in_prefect_yaml_has_an_active_schedule():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for dep in spec["deployments"]:
        assert [s for s in dep["schedules"] if s.get("active") and s.get("cron")], dep["name"]
    assert any(dep["entrypoint"] == TRAIN for dep in spec["deployments"])


@pytest.fixture
def deployed(tmp_path_factory, prefect_api, monkeypatch):
    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "2")  # the worker asks every 2 s
    project = make_project(tmp_path_factory.mktemp("schedules"))
    every_minute(project / "prefect.yaml")
    simulate(project, list(range(4)))
    stack = deploy_project(project, prefect_api.prefect_port)
    yield project
    stack.stop()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # no later test may meet these schedules
        for dep in client.read_deployments():
            if dep.name in {"weekly", "daily"}:
                client.delete_deployment(dep.id)


def test_a_one_minute_cron_creates_runs_and_the_worker_completes_one(deployed):
    from driftloop.runs import scheduled_runs, wait_until_final

    project = deployed
    runs = []
    for _ in range(30):  # the scheduler service fills the schedule within seconds of a deploy
        runs = scheduled_runs("train/weekly")
        if len(runs) >= 2:
            break
        time.sleep(1)
    assert len(runs) >= 2, "the scheduler created no runs for the one-minute cron"
    due = [r.expected_start_time for r in runs]
    assert due[1] - due[0] == timedelta(minutes=1) and due[0].second == 0
    assert runs[0].parameters == {"trigger": "schedule"}

    run = wait_until_final(runs[0].id, timeout=(due[0] - runs[0].created).total_seconds() + LATE_S
                           + 120)
    assert run.state.is_completed(), run.state.message
    assert run.start_time - due[0] < timedelta(seconds=LATE_S)
    decision = json.loads((project / "reports/register/decision.json").read_text())
    assert decision["version"] == 1 and decision["trigger"] == "schedule"
