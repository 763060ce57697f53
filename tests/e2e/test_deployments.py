"""End to end: the demo's story (`driftloop.demo.play`) on a copy of the project with the demo's
own sizes, through a real `prefect server`, a process worker and the deployments of prefect.yaml.

The old champion's measured metric falls on the labelled drifted weeks; the scheduled retrain
on pre-drift data is refused; the policy waits for the drifted weeks' labels, then its event
starts train/weekly, whose version the gate promotes with the evidence on the version; the next
week is quiet against the new champion's reference.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml

from tests.helpers import ROOT, deploy_project, make_project

pytestmark = pytest.mark.slow
DEMO_SECTIONS = ("simulate", "ingest", "train", "drift")  # the sections tests/helpers shrinks


@pytest.fixture(scope="module")
def story(tmp_path_factory, prefect_api):
    from driftloop.config import load_params
    from driftloop.demo import play

    demo = yaml.safe_load((ROOT / "params.yaml").read_text())
    project = make_project(tmp_path_factory.mktemp("demo"), {k: demo[k] for k in DEMO_SECTIONS})
    stack = deploy_project(project, prefect_api.prefect_port)
    old = os.environ.get("DRIFTLOOP_PARAMS")
    os.environ["DRIFTLOOP_PARAMS"] = str(project / "params.yaml")  # the in-process weekly flows
    try:
        params = load_params(project / "params.yaml")
        yield params, play(params, stack, tell=print)
    finally:
        stack.stop()
        if old is None:
            os.environ.pop("DRIFTLOOP_PARAMS", None)
        else:
            os.environ["DRIFTLOOP_PARAMS"] = old


def versions(params) -> dict[int, dict]:
    from mlflow import MlflowClient

    from driftloop import tracking

    tracking.setup(params)
    client = MlflowClient()
    champion = tracking.current_champion(client, params.project.name)
    return {int(v.version): {**v.tags, "champion": v.version == champion.version}
            for v in client.search_model_versions(f"name = '{params.project.name}'")}


def test_the_drift_retrain_is_promoted_with_its_evidence(story):
    params, told = story
    weeks = told["weeks"]
    actions = [w["action"] for w in weeks]
    # a clean week; drifted weeks waiting for their labels; the retrain; a quiet week after it
    assert actions[0] == "ok" and set(actions[1:-2]) == {"wait"} and actions[-2:] == ["retrain", "ok"], \
        [(w["batch"], w["status"], w["action"]) for w in weeks]
    assert weeks[0]["strength"] == 0 and all(w["strength"] > 0 for w in weeks[1:])
    retrain = weeks[-2]
    assert retrain["week"] == told["retrained_at"] and retrain["status"] == "drift"

    v = versions(params)
    assert [v[i]["trigger"] for i in (1, 2, 3)] == ["manual", "schedule", "drift"]
    assert [v[i]["decision"] for i in (1, 2, 3)] == ["promoted", "kept_champion", "promoted"]
    assert v[3]["champion"] and v[3]["previous_champion"] == "1"
    boot = json.loads(v[3]["bootstrap"])
    assert boot["low"] > params.register_.margin, boot
    assert "lies above the margin" in v[3]["reason"] and "no slice regresses" in v[3]["reason"]
    assert retrain["batch"] in v[3]["trigger_reason"]
    for key in ("git_commit", "params_hash", "contract", "challenger_metrics", "champion_metrics"):
        assert v[3][key], key
    assert json.loads(v[3]["data_hashes"])
    assert "does not lie above the margin" in v[2]["reason"]  # the scheduled retrain: no better

    verdict = json.loads((params.report_dir("drift") / retrain["batch"].removesuffix(".parquet")
                          / "verdict.json").read_text())
    assert verdict["policy"]["action"] == "retrain" and verdict["mlflow_run_id"]
    assert f"{params.policy.min_drift_labels} labelled rows" in verdict["policy"]["reason"]


def test_the_old_champion_decays_on_labelled_weeks_and_the_check_after_the_promotion_is_quiet(story):
    params, told = story
    windows = json.loads((params.report_dir("drift") / told["weeks"][-2]["batch"].removesuffix(
        ".parquet") / "verdict.json").read_text())["labelled_windows"]
    values = [w["value"] for w in windows]
    assert len(values) >= 3 and None not in values
    clean, drifted = values[0], values[1:]
    assert max(drifted) < clean and min(drifted) < clean - 0.04, values
    assert all(w["champion_test"] and w["drop"] == pytest.approx(w["champion_test"] - w["value"])
               for w in windows)

    after = told["weeks"][-1]
    assert after["week"] == told["retrained_at"] + 1 and after["champion"] == 3
    assert after["status"] == "no_drift" and after["action"] == "ok", after
