"""Fault: a service is down. The MLflow tracking server during `register`, the Prefect API
during a drift check. Each gives one clear message naming the service and its URL after a
few retries, leaves no half-written registry entry, verdict or policy state, and a rerun
once the service is back completes. Real MLflow (SQLite, and an unreachable server URL),
a real Prefect API, real state files."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml

from driftloop.services import free_port
from tests.faults.test_champion_race import (
    copy_of,
    load,
    registered_project,
    registry,
    train_and_evaluate,
)
from tests.helpers import BIN, ROOT, simulate

POLICY = {"consecutive_drift": 1, "min_drift_labels": 0, "cooldown_hours": 24}


def run(cmd: list[str], cwd, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    return registered_project(tmp_path_factory)


def versions(project) -> list[str]:
    client, name = registry(project)
    return sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'"))


def test_register_with_the_mlflow_server_down_names_it_and_a_rerun_completes(registered, tmp_path):
    from driftloop.trigger import Trigger
    from pipelines import register

    project = copy_of(registered, tmp_path / "p")
    train_and_evaluate(project, seed=3)  # a new challenger, trained while the store was up
    decision = (project / "reports/register/decision.json").read_bytes()
    before = versions(project)
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = run(["python", "-m", "pipelines.register"], project, MLFLOW_TRACKING_URI=dead)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"MLflow tracking server at {dead}/health is not reachable" in proc.stderr, proc.stderr
    assert "after 2 attempts" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60  # a short retry, not MLflow's minutes of backoff
    assert versions(project) == before  # nothing registered
    assert (project / "reports/register/decision.json").read_bytes() == decision

    result = register.run(load(project), Trigger("manual", ""))  # the store is back
    assert versions(project) == [*before, str(result["version"])]
    assert json.loads((project / "reports/register/decision.json").read_text())["version"] == 3


def test_a_register_cut_off_before_the_alias_move_is_finished_by_its_rerun(registered, tmp_path,
                                                                           monkeypatch):
    """The store goes away between registration and the alias move: the version exists with
    all its evidence and says "promoting", not "promoted"; the rerun finds it instead of
    adding another, and moves the alias."""
    from driftloop.retry import ServiceDown
    from driftloop.trigger import Trigger
    from pipelines import register

    project = copy_of(registered, tmp_path / "p")
    params = train_and_evaluate(project, seed=3)

    def store_gone(*args, **kwargs):
        raise ServiceDown("the MLflow tracking server at http://127.0.0.1:1 is not reachable")

    with monkeypatch.context() as m:
        m.setattr(register, "move_champion", store_gone)
        with pytest.raises(ServiceDown):
            register.run(params, Trigger("manual", ""))
    client, name = registry(project)
    tags = client.get_model_version(name, "3").tags
    assert tags["decision"] == "promoting" and tags["previous_champion"] == "2" and tags["reason"]
    result = register.run(params, Trigger("manual", ""))
    assert result["version"] == 3 and result["promote"] is True
    assert versions(project) == ["1", "2", "3"]
    assert client.get_model_version(name, "3").tags["decision"] == "promoted"


@pytest.fixture
def drifted(registered, tmp_path):
    """A copy whose policy retrains on the first drifted batch, and one drifted batch,
    checked for real (Evidently against the champion's reference)."""
    from flows.drift_check import check

    project = copy_of(registered, tmp_path / "p")
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["policy"].update(POLICY)
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    (batch,) = simulate(project, [30], drift_from=20)
    params = load(project)
    result = check.fn(params, str(batch))
    assert result["status"] == "drift", result["reason"]
    return project, params, result


def drift_events(api: str, batch: str) -> list[dict]:
    import httpx

    body = {"filter": {"event": {"name": ["driftloop.drift.detected"]}}, "limit": 50}
    events = httpx.post(f"{api}/events/filter", json=body, timeout=10).json()["events"]
    return [e for e in events if e["payload"].get("batch") == batch]


@pytest.mark.slow
def test_prefect_down_at_the_retrain_request_keeps_no_state_and_a_rerun_asks(drifted, prefect_api):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from driftloop.monitor import policy
    from driftloop.retry import ServiceDown
    from flows.drift_check import drift_check, request_retrain

    project, params, result = drifted
    state, log = params.path("policy_state"), params.path("decisions")
    dead = f"http://127.0.0.1:{free_port()}/api"

    def request(decision):
        return request_retrain(params, result, decision)

    with temporary_settings({PREFECT_API_URL: dead}):  # the API goes away after the check
        with pytest.raises(ServiceDown, match=f"Prefect API at {dead} is not reachable"):
            policy.apply(params, result, request=request)
    assert not state.exists()  # the retrain was not kept: the next check asks again
    (failed,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert failed["action"] == "request_failed" and dead in failed["reason"]
    verdict = json.loads((project / "reports/drift" / batch_stem(result) / "verdict.json").read_text())
    assert verdict["status"] == "drift" and verdict["policy"]["action"] == "request_failed"

    os.environ["DRIFTLOOP_PARAMS"] = str(project / "params.yaml")
    try:  # the API is back: the next drift check, a real flow run, asks again
        record = drift_check(result["batch"])["policy"]
    finally:
        os.environ.pop("DRIFTLOOP_PARAMS", None)
    assert record["action"] == "retrain", record["reason"]
    assert json.loads(state.read_text())["triggered"] == [result["batch"]]
    deadline = time.monotonic() + 20
    while not drift_events(prefect_api.prefect_api, result["batch"]):
        assert time.monotonic() < deadline, "the retrain event never reached the Prefect API"
        time.sleep(0.5)


def batch_stem(result: dict) -> str:
    return result["batch"].rsplit(".", 1)[0]


def test_a_drift_check_with_the_prefect_api_down_names_it_and_writes_nothing(tmp_path):
    """`python -m flows.drift_check` probes the API first: no check, no verdict, no state."""
    from driftloop.config import load_params

    params = load_params(ROOT / "params.yaml")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["services"].update(retries=1, backoff_s=0.1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    dead = f"http://127.0.0.1:{free_port()}/api"
    proc = run(["python", "-m", "flows.drift_check"], ROOT, PREFECT_API_URL=dead,
               DRIFTLOOP_PARAMS=str(tmp_path / "params.yaml"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"the Prefect API at {dead}/health is not reachable" in proc.stderr, proc.stderr
    assert "prefect server start" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / params.paths.policy_state).exists()
    assert not (tmp_path / params.paths.reports / "drift").exists()
