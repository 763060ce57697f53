"""End to end: a real `prefect server`, a process worker, deployments from prefect.yaml;
train/weekly runs, then a drifted batch makes drift-check trigger a second training run."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest

from tests.helpers import BIN, deploy_project, make_project, simulate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, prefect_api):
    project = make_project(tmp_path_factory.mktemp("e2e"))
    stack = deploy_project(project, prefect_api.prefect_port)
    yield project, stack
    stack.stop()


def prefect(stack, *args):
    return subprocess.run([str(BIN / "prefect"), *args], cwd=stack.root, env=stack.env(),
                          capture_output=True, text=True, timeout=400)


def test_deployed_train_then_drift_triggers_retraining(deployed):
    from driftloop.runs import deployment_runs, wait_for_run

    project, stack = deployed
    simulate(project, list(range(6)))
    out = prefect(stack, "deployment", "run", "train/weekly", "-p", "trigger=manual", "--watch")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    first = json.loads((project / "reports/register/decision.json").read_text())
    assert first["version"] == 1 and first["promote"]

    (drifted,) = simulate(project, [6], drift_from=6)
    since = datetime.now(UTC)
    out = prefect(stack, "deployment", "run", "drift-check/daily", "-p",
                  f"batch={drifted.name}", "--watch")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    verdict = json.loads((project / "reports/drift" / drifted.stem / "verdict.json").read_text())
    assert verdict["status"] == "drift", verdict["reason"]

    run = wait_for_run("train/weekly", since, trigger="drift", timeout=300)
    assert run.state.is_completed(), run.state.message
    assert "drift in" in run.parameters["reason"]
    second = json.loads((project / "reports/register/decision.json").read_text())
    assert second["version"] == 2 and second["trigger"] == "drift"
    assert len([r for r in deployment_runs("train/weekly", since)]) == 1
