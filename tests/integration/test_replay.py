"""`driftloop replay` end to end on simulated data with a known drift onset, and its CLI."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from typer.testing import CliRunner

from driftloop.monitor.replay import replay_params, run_replay, train_served
from driftloop.simulate import simulate_week
from tests.helpers import ROOT, demo_params

ONSET = 9  # first drifted week
WEEKS = 15
INITIAL = 5


def fast_params():
    """The demo's params with XGBoost only and a reference sized to a week (fast, CPU)."""
    p = demo_params()
    body = p.model_dump(by_alias=True)
    body["train"] = {**body["train"], "candidates": ["xgboost"],
                     "xgboost": {**body["train"]["xgboost"], "n_jobs": 1}}
    # noise_rounds stays the project's: fewer rounds make a noisier floor, and the dataset rule
    # (drift.correction) then asks for more drifted features (10 of 23 at 10 rounds)
    body["drift"] = {**body["drift"], "reference_rows": 1500}
    return type(p).model_validate(body)


@pytest.fixture(scope="module")
def weeks() -> pd.DataFrame:
    return pd.concat([simulate_week(w, rows=1200, seed=11, start=date(2026, 1, 5), drift=w >= ONSET)
                      for w in range(WEEKS)], ignore_index=True)


@pytest.mark.slow
def test_the_policy_retrains_only_after_the_onset_and_beats_never(weeks):
    steps = []
    out = run_replay(fast_params(), weeks, target="default", time_col="event_time",
                     id_col="application_id", every="week", initial_periods=INITIAL, label_delay=1,
                     progress=steps.append)
    rows = out["periods"]
    assert len(rows) == WEEKS - INITIAL and sum(steps) == len(rows)
    onset_label = rows[ONSET - INITIAL]["period"]
    retrained = [r["period"] for r in rows if r["action"] == "retrain"]
    assert retrained and min(retrained) >= onset_label  # no retrain before the drift starts
    s = out["summary"]
    assert s["policy"]["promotions"] >= 1
    assert s["policy"]["mean_metric"] > s["never"]["mean_metric"]
    assert s["always"]["retrains"] == len(rows) - 1  # the first period has no new labels yet
    assert s["policy"]["retrains"] < s["always"]["retrains"]
    # each window is trained once: the policy's challengers are `always`'s models
    assert out["setup"]["trainings"] == s["always"]["retrains"] + 1
    assert all(r["gate"].startswith(("promoted", "kept", "no labelled")) for r in rows
               if r["action"] == "retrain")


@pytest.mark.slow
def test_cli_json_is_the_only_stdout_and_bad_input_names_the_column(tmp_path, weeks):
    from driftloop.cli import app

    data = tmp_path / "weeks.parquet"
    weeks[weeks["event_time"] < pd.Timestamp("2026-03-16")].to_parquet(data)  # 10 weeks
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text().replace(
        "candidates: [xgboost, mlp]", "candidates: [xgboost]"))
    cli = CliRunner()
    base = ["replay", str(data), "--target", "default", "--time", "event_time", "--id",
            "application_id", "--every", "week", "--initial-periods", "8", "--params", str(params)]
    res = cli.invoke(app, [*base, "--json", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert set(body) == {"periods", "summary"} and len(body["periods"]) == 2
    assert set(body["summary"]["policy"]) == {"mean_metric", "retrains", "promotions"}
    assert {f.name for f in (tmp_path / "out").iterdir()} == {"replay.csv", "replay.png", "summary.json",
                                                               "monitoring.html"}
    bad = cli.invoke(app, [*base[:2], "--target", "nope", *base[4:]])
    assert bad.exit_code == 2 and "no column 'nope'" in bad.output


def test_a_window_trained_twice_gives_the_same_model(weeks):
    """What lets replay train a window once for both strategies: training is deterministic
    for a seed on CPU, for every candidate learner."""
    p = replay_params(demo_params(), weeks, target="default", time_col="event_time",
                      id_col="application_id", drop=[])
    body = p.model_dump(by_alias=True)
    body["train"]["mlp"] = {**body["train"]["mlp"], "max_epochs": 3}
    p = type(p).model_validate(body)
    window = weeks[weeks["event_time"] < pd.Timestamp("2026-01-26")]  # 3 weeks
    rows = weeks.tail(300)
    for kind in ("xgboost", "mlp"):
        pk = type(p).model_validate({**body, "train": {**body["train"], "candidates": [kind]}})
        a, _ = train_served(pk, window, 1)
        b, _ = train_served(pk, window, 2)
        assert a.model.kind == kind
        pa = a.model.predict(None, rows[pk.data.features])
        pb = b.model.predict(None, rows[pk.data.features])
        assert (pa == pb).all(), kind
        assert a.threshold == b.threshold and a.test_metric == b.test_metric
