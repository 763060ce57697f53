"""The train flow against a real Prefect API, real DVC in a real git repo and real MLflow
(SQLite), on tiny data in temporary copies of the project."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest

from tests.helpers import make_project, run, simulate

pytestmark = pytest.mark.slow
WEEKS = list(range(6))


def client_for(project):
    from mlflow import MlflowClient

    from driftloop import tracking
    from driftloop.config import load_params

    params = load_params(project / "params.yaml")
    tracking.setup(params)  # unlike mlflow.set_tracking_uri, leaves the environment alone
    return MlflowClient(), params.project.name


def run_train_flow(project, trigger="manual"):
    from flows.train import train

    os.environ["DRIFTLOOP_PARAMS"] = str(project / "params.yaml")
    try:
        return train(trigger=trigger, return_state=True)
    finally:
        os.environ.pop("DRIFTLOOP_PARAMS", None)


def champion_version(project):
    from driftloop.tracking import current_champion

    client, name = client_for(project)
    champ = current_champion(client, name)
    return champ.version if champ else None


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_api):
    project = make_project(tmp_path_factory.mktemp("flow"))
    simulate(project, WEEKS)
    state = run_train_flow(project)
    assert state.is_completed(), state.message
    return project


def test_flow_registers_a_champion_with_evidence(trained):
    client, name = client_for(trained)
    versions = client.search_model_versions(f"name = '{name}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert str(champion_version(trained)) == "1"
    tags = client.get_model_version(name, "1").tags
    assert tags["trigger"] == "manual" and tags["decision"] == "promoted"
    assert len(tags["params_hash"]) == 16 and "data/splits" in json.loads(tags["data_hashes"])


def test_flow_metrics_beat_chance_and_dvc_is_clean(trained):
    metrics = json.loads((trained / "reports/evaluate/metrics.json").read_text())
    assert metrics["auc"] > 0.7
    assert {"f1", "precision", "recall", "log_loss", "confusion"} <= set(metrics)
    status = run(["dvc", "status"], trained)
    assert "up to date" in status.stdout, status.stdout
    assert (trained / "dvc-remote").is_dir()  # outputs were pushed


def test_champion_pyfunc_takes_raw_rows_and_returns_probabilities(trained):
    import mlflow

    client_for(trained)
    from driftloop.simulate import simulate_week

    raw = simulate_week(20, rows=50, seed=1, start=pd.Timestamp("2026-01-05").date(), drift=False)
    proba = mlflow.pyfunc.load_model("models:/driftloop-demo@champion").predict(raw)
    assert proba.shape == (50,) and ((proba > 0) & (proba < 1)).all()
    assert len(set(proba.round(6))) > 10  # probabilities, not labels


def test_dvc_repro_alone_gives_the_same_metrics(trained, tmp_path):
    project = make_project(tmp_path)
    simulate(project, WEEKS)
    run(["dvc", "repro"], project)
    a = json.loads((trained / "reports/evaluate/metrics.json").read_text())
    b = json.loads((project / "reports/evaluate/metrics.json").read_text())
    for k in ("auc", "f1", "log_loss", "precision", "recall"):
        assert a[k] == pytest.approx(b[k], abs=1e-9), k
    assert a["confusion"] == b["confusion"]


def _copy_trained(trained, tmp_path):
    dest = tmp_path / "copy"
    shutil.copytree(trained, dest, symlinks=True)
    # the copy keeps its own MLflow store, so nothing it does can move the original's champion
    text = (dest / "params.yaml").read_text()
    assert "sqlite:///mlruns.db" in text
    return dest


@pytest.mark.parametrize("corrupt,column", [
    (lambda df: df.drop(columns=["credit_score"]), "credit_score"),
    (lambda df: df.assign(age=df["age"].where(df.index % 10 != 0, 140.0)), "age"),
])
def test_bad_batch_stops_at_validate_and_keeps_the_champion(trained, tmp_path, corrupt, column):
    from driftloop.simulate import simulate_week

    project = _copy_trained(trained, tmp_path)
    before = champion_version(project)
    good = simulate_week(6, rows=500, seed=7, start=pd.Timestamp("2026-01-05").date(),
                         drift=False)
    corrupt(good).to_parquet(project / "data/landing/batch_2026-02-16.parquet")
    state = run_train_flow(project)
    assert state.is_failed()
    assert "validate" in state.message and column in state.message, state.message
    assert champion_version(project) == before
    report = json.loads((project / "reports/validate/report.json").read_text())
    assert not report["passed"]
    assert any(f["column"] and column in f["column"] and f["batch"] == "batch_2026-02-16.parquet"
               for f in report["failures"])
    assert not (project / "reports/register/decision.json").read_text().count('"version": 2')


def test_flow_trains_again_after_the_mlflow_store_is_reset(trained, tmp_path):
    """DVC's run cache still holds the first training; its outputs name an MLflow run the
    new store does not have, so the flow must train again rather than restore them."""
    project = _copy_trained(trained, tmp_path)
    for rel in ("mlruns.db", "mlartifacts", "dvc.lock", "models", "reports", "data/raw",
                "data/interim", "data/validated", "data/splits"):
        path = project / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    assert any((project / ".dvc/cache/runs").iterdir())  # the run cache survived the reset
    simulate(project, WEEKS)
    state = run_train_flow(project)
    assert state.is_completed(), state.message
    client, name = client_for(project)
    run_id = json.loads((project / "reports/train/metrics.json").read_text())["run_id"]
    assert client.get_run(run_id).info.status == "FINISHED"
    assert str(champion_version(project)) == "1"
