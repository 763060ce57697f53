"""train -> evaluate -> register for each task, at the stage level, with real MLflow (SQLite)
in a temporary project copy: multiclass on generated data, regression on bike sharing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import make_project

pytestmark = pytest.mark.slow
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def staged(tmp_path, overrides: dict, frame: pd.DataFrame, time_col: str):
    """A project copy whose splits are `frame` cut by time 70/15/15."""
    from driftloop.config import load_params

    project = make_project(tmp_path, overrides)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["register"]["thresholds"] = overrides["register"]["thresholds"]  # replace, not merge
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(project / "params.yaml")
    frame = frame.sort_values(time_col).reset_index(drop=True)
    n = len(frame)
    cuts = {"train": frame.iloc[: int(.7 * n)], "val": frame.iloc[int(.7 * n): int(.85 * n)],
            "test": frame.iloc[int(.85 * n):]}
    params.path("splits").mkdir(parents=True, exist_ok=True)
    for name, part in cuts.items():
        part.to_parquet(params.path("splits") / f"{name}.parquet", index=False)
    return params


def train_evaluate_register(params):
    from driftloop.trigger import Trigger
    from pipelines import evaluate, register, train

    return train.run(params), evaluate.run(params), register.run(params, Trigger("manual", ""))


def test_multiclass_on_generated_data(tmp_path):
    from driftloop.simulate import simulate_week

    frames = [simulate_week(w, rows=800, seed=3, start=date(2026, 1, 5), drift=False) for w in range(4)]
    df = pd.concat(frames, ignore_index=True)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, .5, len(df))
    score = -(df["credit_score"].fillna(680) - 680) / 60 + 2 * df["debt_to_income"] + noise
    df["tier"] = pd.cut(score, [-np.inf, -0.3, 0.8, np.inf], labels=["low", "mid", "high"]).astype(str)
    params = staged(tmp_path, {"task": "multiclass", "data": {"target": "tier"},
                               "register": {"metric": "macro_f1", "thresholds": {"macro_f1": 0.4}}},
                    df.drop(columns=["default"]), "event_time")
    tr, ev, reg = train_evaluate_register(params)
    assert tr["classes"] == ["high", "low", "mid"]
    assert ev["macro_f1"] > 0.5 and ev["accuracy"] > 0.5 and np.isfinite(ev["log_loss"])
    assert np.array(ev["confusion"]).shape == (3, 3)
    assert reg["promote"] and reg["version"] == 1

    import mlflow
    proba = mlflow.pyfunc.load_model("models:/driftloop-demo@champion").predict(df.head(20))
    assert list(proba.columns) == ["high", "low", "mid"]
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.skipif(not (SHARED / "bike_sharing_hour.csv").exists(),
                    reason="../shared/data/bike_sharing_hour.csv is absent")
def test_regression_on_bike_sharing(tmp_path):
    df = pd.read_csv(SHARED / "bike_sharing_hour.csv")
    df["when"] = pd.to_datetime(df["dteday"]) + pd.to_timedelta(df["hr"], unit="h")
    df = df.drop(columns=["casual", "registered", "dteday"])  # both add up to the target
    cats = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit"]
    df[cats] = df[cats].astype(str)
    params = staged(tmp_path, {
        "task": "regression",
        "data": {"target": "cnt", "id": "instant", "time": "when", "categorical": cats,
                 "numerical": ["temp", "atemp", "hum", "windspeed"]},
        "evaluate": {"slices": ["season"]},
        "train": {"xgboost": {"n_estimators": 400, "learning_rate": 0.1},
                  "mlp": {"max_epochs": 8}},
        "register": {"metric": "rmse", "thresholds": {"r2": 0.5}},
    }, df, "when")
    tr, ev, reg = train_evaluate_register(params)
    naive = float(np.sqrt(np.mean((df["cnt"].iloc[int(.85 * len(df)):] - df["cnt"].mean()) ** 2)))
    assert ev["r2"] > 0.7 and ev["rmse"] < 0.6 * naive, ev
    assert {"mae", "mape"} <= set(ev)
    assert reg["promote"]
    slices = json.loads((params.report_dir("evaluate") / "slices.json").read_text())
    assert {s["level"] for s in slices} >= {"3", "4"}


def demo_frame(weeks=4, rows=600):
    from driftloop.simulate import simulate_week

    return pd.concat([simulate_week(w, rows=rows, seed=3, start=date(2026, 1, 5), drift=False)
                      for w in range(weeks)], ignore_index=True)


def test_rollback_restores_the_previous_champion_and_records_why(tmp_path):
    from mlflow import MlflowClient

    from driftloop import tracking

    loose = {"register": {"metric": "auc", "thresholds": {"auc": 0.6}, "margin": -1.0,
                          "slice_tolerance": 1.0}}
    params = staged(tmp_path, loose, demo_frame(), "event_time")
    with pytest.raises(RuntimeError, match="no @champion"):
        tracking.rollback(params, "nothing yet")
    train_evaluate_register(params)
    with pytest.raises(RuntimeError, match="replaced no earlier champion"):
        tracking.rollback(params, "first one")
    # a different model on the same data: the loose gate promotes it
    second = params.model_copy(update={"train": params.train.model_copy(update={"seed": 7})})
    _, _, reg = train_evaluate_register(second)
    assert reg["promote"] and reg["version"] == 2
    with pytest.raises(ValueError, match="needs a reason"):
        tracking.rollback(params, "  ")
    out = tracking.rollback(params, "v2 misbehaves on broker traffic")
    assert out == {"model": "driftloop-demo", "from": 2, "to": 1,
                   "reason": "v2 misbehaves on broker traffic"}
    client = MlflowClient()
    assert str(tracking.current_champion(client, "driftloop-demo").version) == "1"
    assert client.get_model_version("driftloop-demo", "2").tags["rolled_back"].startswith("v2 misb")

    # every move of @champion, in the registry (a fresh client on the same store: a restart)
    moves = tracking.champion_history(MlflowClient(), "driftloop-demo")
    assert [(m["kind"], m["from"], m["to"]) for m in moves] == [
        ("promotion", None, "1"), ("promotion", "1", "2"), ("rollback", "2", "1")]
    assert moves[2]["reason"] == "v2 misbehaves on broker traffic" and moves[2]["at"]
    assert moves[1]["evidence"] == "models:/driftloop-demo/2"
    descriptions = {v: client.get_model_version("driftloop-demo", v).description for v in "12"}
    assert descriptions["1"].startswith("promoted (")
    assert descriptions["2"].startswith("rolled back to v1: v2 misbehaves")
    from typer.testing import CliRunner

    from driftloop.cli import app

    res = CliRunner().invoke(app, ["history", "--json", "--params", str(params.root / "params.yaml")])
    assert res.exit_code == 0, res.output
    assert [m["kind"] for m in json.loads(res.stdout)] == ["promotion", "promotion", "rollback"]


def test_retraining_the_same_model_is_never_promoted(tmp_path):
    from driftloop.trigger import Trigger
    from pipelines import register

    loose = {"register": {"metric": "auc", "thresholds": {"auc": 0.6}, "margin": -1.0,
                          "slice_tolerance": 1.0}}
    params = staged(tmp_path, loose, demo_frame(), "event_time")
    train_evaluate_register(params)
    again = register.run(params, Trigger("manual", ""))  # the very same model registered again
    assert not again["promote"] and "identical" in again["reason"]
    assert again["champion_version"] == 1


def test_optuna_tuning_logs_each_trial_as_a_nested_run(tmp_path):
    import mlflow

    from pipelines import train

    params = staged(tmp_path, {"train": {"candidates": ["xgboost"],
                                         "tuning": {"enabled": True, "n_trials": 4, "timeout_s": 120}},
                               "register": {"thresholds": {"auc": 0.6}}},
                    demo_frame(weeks=3, rows=500), "event_time")
    report = train.run(params)
    runs = mlflow.search_runs(experiment_names=["driftloop-demo"])
    trials = runs[runs["tags.mlflow.runName"].str.startswith("trial-")]
    assert len(trials) == 4
    assert (trials["tags.mlflow.parentRunId"].notna()).all()
    assert report["val"]["xgboost"]["auc"] > 0.6
