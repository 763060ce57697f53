"""End to end: a real `prefect server`, a process worker and the deployments of prefect.yaml.

In file order (one project, one champion):
1. five `driftloop.drift.detected` events within a minute start ONE `train/weekly` run
   (the trigger's window), which trains the first champion;
2. eight weekly drift checks without drift ask for no retrain;
3. eight live weeks with drift from the fifth: each arrives unlabelled, is scored and checked,
   and the labels of the week before arrive. The policy waits until the drifted weeks have
   two weeks of labels, then asks once; the event starts one retrain, a new version is
   registered and the promotion decision recorded.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import pytest

from tests.helpers import deploy_project, make_project, simulate

pytestmark = pytest.mark.slow
# 500 rows a week (tests/helpers.TINY): two labelled drifted weeks. The performance trigger is
# kept out of the way: at 500 rows a week's AUC is too noisy for a 0.05 limit.
POLICY = {"consecutive_drift": 2, "cooldown_hours": 24, "max_per_week": 2,
          "min_drift_labels": 1000, "performance_drop": 0.5}


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


def arrive(project, weeks: list[int], drift_from: int | None) -> list:
    """The weeks arrive unlabelled in incoming/ (scored and checked from there)."""
    from driftloop.config import load_params
    from driftloop.simulate import run as sim_run

    return sim_run(load_params(project / "params.yaml"), weeks, drift_from, project / "incoming",
                   labelled=False)


def label(project, week: int, drift_from: int | None) -> list[int]:
    """The labels due when `week` arrives: label files, and the labelled rows land for training."""
    from driftloop import simulate as sim
    from driftloop.config import load_params

    params = load_params(project / "params.yaml")
    due = sim.labels_due([week], params.simulate.label_delay_days)
    sim.write_labels(params, due, drift_from)
    sim.run(params, due, drift_from)
    return due


def check_all(files) -> list[dict]:
    from flows.drift_check import drift_check

    return [drift_check(str(f)) for f in files]


def artifact_text(key: str) -> str:
    """The newest Prefect artifact under `key` (a link artifact is stored as markdown)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                      sort=ArtifactSort.CREATED_DESC, limit=1)
    assert found, f"no artifact {key!r}"
    return str(found[0].data)


def drift_runs(since):
    from driftloop.runs import deployment_runs

    return [r for r in deployment_runs("train/weekly", since)
            if r.parameters.get("trigger") == "drift"]


def test_five_drift_events_within_a_minute_start_one_retrain(deployed):
    from prefect.events import emit_event

    from driftloop.runs import wait_for_run

    project, _ = deployed
    simulate(project, list(range(6)))  # labelled history
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
    results = check_all(arrive(project, list(range(6, 14)), None))
    assert [r["policy"]["action"] for r in results] == ["ok"] * 8, \
        [(r["batch"], r["reason"]) for r in results]
    assert all(r["prediction_drift"] is not None for r in results)
    assert drift_runs(since) == []
    # before labels: the champion's AUC estimated from its scores, near its test figure on
    # weeks like its training data (500 rows a week: the interval is wide, the mean is not)
    est = [r["estimated_performance"] for r in results]
    assert all(e and e["metric"] == "auc" and e["rows"] == 500 for e in est), est[0]
    auc = [e["metrics"]["auc"] for e in est]
    assert all(a["low"] < a["estimate"] < a["high"] for a in auc)
    mean = sum(a["estimate"] for a in auc) / len(auc)
    assert abs(mean - est[0]["baseline"]) < 0.06, (mean, est[0]["baseline"])
    # one page over time, and links an http UI opens (not file://)
    page = (project / "reports/monitoring.html").read_text()
    assert all(r["batch"].removesuffix(".parquet") in page for r in results)
    assert "file://" not in artifact_text("drift-report")
    assert "http://127.0.0.1:5000/#/experiments/" in artifact_text("monitoring-page")


def test_drifted_weeks_retrain_once_their_labels_have_arrived(deployed):
    from driftloop.runs import wait_for_run
    from flows.drift_check import drift_check
    from flows.score import score

    project, _ = deployed
    since = datetime.now(UTC)
    results, files = [], []
    for week in range(14, 22):
        assert label(project, week, drift_from=18) == [week - 1]
        (batch,) = arrive(project, [week], drift_from=18)
        score(str(batch))
        results.append(drift_check(str(batch)))
        files.append(batch)
    actions = [r["policy"]["action"] for r in results]
    # week 18 drifts: no labels of it yet; 19: labels of 18 only (500 rows); 20: of 18 and 19
    assert actions[:7] == ["ok"] * 4 + ["wait", "wait", "retrain"], \
        [(r["batch"], r["status"], r["policy"]["reason"]) for r in results]
    assert "drift in 1 of 2 consecutive batches" in results[4]["policy"]["reason"]
    assert "only 500 labelled rows" in results[5]["policy"]["reason"]
    assert actions.count("retrain") == 1 and actions[7] in {"ok", "wait", "cooldown"}
    verdict = json.loads((project / "reports/drift" / files[6].stem / "verdict.json").read_text())
    assert verdict["policy"]["action"] == "retrain" and "1000 labelled rows" in verdict["policy"]["reason"]
    assert f"{files[4].name}, {files[5].name}, {files[6].name}" in verdict["policy"]["reason"]
    assert (project / verdict["report_html"]).exists() and verdict["mlflow_run_id"]
    labelled = {w["window"]: w for w in verdict["labelled_windows"]}
    assert [files[i].stem in labelled for i in range(7)] == [True] * 6 + [False]
    assert all(w["value"] is not None and w["champion_test"] for w in labelled.values())

    run = wait_for_run("train/weekly", since, trigger="drift", timeout=300)
    assert run.state.is_completed(), run.state.message
    assert files[6].name in run.parameters["reason"]
    time.sleep(5)
    assert len(drift_runs(since)) == 1
    second = json.loads((project / "reports/register/decision.json").read_text())
    assert second["version"] == 2 and second["trigger"] == "drift" and second["reason"]
    log = [json.loads(line) for line in
           (project / "data/monitoring/decisions.jsonl").read_text().splitlines()]
    assert [d["key"] for d in log if d["action"] == "retrain"] == [files[6].name]
