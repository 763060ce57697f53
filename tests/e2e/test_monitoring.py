"""End to end: a real `prefect server`, a process worker and the deployments of prefect.yaml.

In file order (one project, one champion):
1. five `driftloop.drift.detected` events within a minute start ONE `train/weekly` run
   (the trigger's window), which trains the first champion;
2. eight weekly drift checks without drift ask for no retrain;
3. eight weekly checks with drift from the fifth week: the policy (2 consecutive drifted
   batches) asks once, the event starts one retrain, a new version is registered and the
   promotion decision recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime

import pytest

from tests.helpers import deploy_project, make_project

pytestmark = pytest.mark.slow
POLICY = {"consecutive_drift": 2, "cooldown_hours": 24, "max_per_week": 2}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, prefect_api):
    project = make_project(tmp_path_factory.mktemp("monitoring"), {"policy": POLICY})
    stack = deploy_project(project, prefect_api.prefect_port)
    old = os.environ.get("DRIFTLOOP_PARAMS")
    os.environ["DRIFTLOOP_PARAMS"] = str(project / "params.yaml")  # in-process drift checks
    yield project, stack
    stack.stop()
    if old is None:
        os.environ.pop("DRIFTLOOP_PARAMS", None)
    else:
        os.environ["DRIFTLOOP_PARAMS"] = old


def weeks(project, first: int, n: int, drift_from: int | None):
    """Write the weeks into incoming/ (checked from there) and land a copy for training."""
    from driftloop.config import load_params
    from driftloop.simulate import run as sim_run

    files = sim_run(load_params(project / "params.yaml"), list(range(first, first + n)),
                    drift_from, project / "incoming")
    for f in files:
        tmp = project / "data/landing" / f".{f.name}.part"
        shutil.copy2(f, tmp)
        tmp.rename(project / "data/landing" / f.name)
    return files


def check_all(files) -> list[dict]:
    from flows.drift_check import drift_check

    return [drift_check(str(f)) for f in files]


def drift_runs(since):
    from driftloop.runs import deployment_runs

    return [r for r in deployment_runs("train/weekly", since)
            if r.parameters.get("trigger") == "drift"]


def test_five_drift_events_within_a_minute_start_one_retrain(deployed):
    from prefect.events import emit_event

    from driftloop.runs import wait_for_run

    project, _ = deployed
    weeks(project, 0, 6, None)
    since = datetime.now(UTC)
    for i in range(5):
        emit_event(event="driftloop.drift.detected",
                   resource={"prefect.resource.id": "driftloop.dataset.driftloop-demo"},
                   payload={"reason": f"drift in batch_{i}: test event {i}"})
    run = wait_for_run("train/weekly", since, trigger="drift", timeout=300)
    assert run.state.is_completed(), run.state.message
    time.sleep(5)  # any further run the events could have caused would exist by now
    assert len(drift_runs(since)) == 1
    first = json.loads((project / "reports/register/decision.json").read_text())
    assert first["version"] == 1 and first["trigger"] == "drift"


def test_eight_weeks_without_drift_ask_for_no_retrain(deployed):
    project, stack = deployed
    stack.deploy()  # a fresh automation: its window from test 1 must not hide test 3's event
    since = datetime.now(UTC)
    results = check_all(weeks(project, 6, 8, None))
    assert [r["policy"]["action"] for r in results] == ["ok"] * 8, \
        [(r["batch"], r["reason"]) for r in results]
    assert all(r["prediction_drift"] is not None for r in results)
    assert drift_runs(since) == []


def test_eight_weeks_with_drift_from_week_five_retrain_once(deployed):
    from driftloop.runs import wait_for_run

    project, _ = deployed
    since = datetime.now(UTC)
    files = weeks(project, 14, 8, drift_from=18)
    results = check_all(files)
    actions = [r["policy"]["action"] for r in results]
    assert actions[:6] == ["ok"] * 4 + ["wait", "retrain"], \
        [(r["batch"], r["status"], r["policy"]["reason"]) for r in results]
    assert actions.count("retrain") == 1 and set(actions[6:]) <= {"ok", "wait", "cooldown"}
    verdict = json.loads((project / "reports/drift" / files[5].stem / "verdict.json").read_text())
    assert verdict["policy"]["action"] == "retrain" and files[4].name in verdict["policy"]["reason"]
    assert (project / verdict["report_html"]).exists() and verdict["mlflow_run_id"]

    run = wait_for_run("train/weekly", since, trigger="drift", timeout=300)
    assert run.state.is_completed(), run.state.message
    assert files[5].name in run.parameters["reason"]
    time.sleep(5)
    assert len(drift_runs(since)) == 1
    second = json.loads((project / "reports/register/decision.json").read_text())
    assert second["version"] == 2 and second["trigger"] == "drift" and second["reason"]
    log = [json.loads(line) for line in
           (project / "data/monitoring/decisions.jsonl").read_text().splitlines()]
    assert [d["key"] for d in log if d["action"] == "retrain"] == [files[5].name]
