"""False alarms and detection delay end to end on small simulated data: `replay_streams`
with a real first champion, and `driftloop backtest --null/--onset` through the CLI."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from typer.testing import CliRunner

from driftloop.monitor.replay import replay_streams
from driftloop.simulate import simulate_week
from tests.helpers import demo_params

INITIAL, ROWS = 3, 900


def fast_params():
    """The demo's params with XGBoost only (fast, CPU)."""
    p = demo_params()
    body = p.model_dump(by_alias=True)
    body["train"] = {**body["train"], "candidates": ["xgboost"],
                     "xgboost": {**body["train"]["xgboost"], "n_jobs": 1}}
    return type(p).model_validate(body)


@pytest.fixture(scope="module")
def weeks() -> pd.DataFrame:
    """Three calm weeks, then two with the simulator's full covariate and concept drift."""
    return pd.concat([simulate_week(w, rows=ROWS, seed=5, start=date(2026, 1, 5),
                                    drift=w >= INITIAL) for w in range(INITIAL + 2)],
                     ignore_index=True)


def test_null_periods_raise_no_alarm_and_a_known_shift_is_caught(weeks):
    out = replay_streams(fast_params(), weeks, target="default", time_col="event_time",
                         id_col="application_id", every="week", initial_periods=INITIAL,
                         label_delay=1, null_periods=3, onset=1)
    null, onset = out["summary"]["null"], out["summary"]["onset"]
    assert null["periods"] == 3 and null["false_drift"] == 0 and null["false_retrains"] == 0
    assert null["false_retrains_per_year"] == 0.0
    assert [r["rows"] for r in out["streams"]["null"]["rows"]] == [ROWS] * 3
    assert onset["periods"] == 3 and onset["false_drift_before_onset"] == 0
    assert onset["detection_delay"] is not None and onset["detection_delay"] <= 2
    assert onset["metric_drop_after_onset"] > 0  # the shift costs the champion


def test_backtest_cli_reports_both_figures(tmp_path, weeks):
    from driftloop.cli import app

    t = pd.to_datetime(weeks["event_time"])
    ref, batches = tmp_path / "reference.parquet", tmp_path / "batches"
    batches.mkdir()
    weeks[t < pd.Timestamp("2026-01-19")].to_parquet(ref)                  # two calm weeks
    weeks[t >= pd.Timestamp("2026-01-26")].head(ROWS).to_parquet(batches / "w1.parquet")  # drifted
    res = CliRunner().invoke(app, ["backtest", "--reference", str(ref), "--batches", str(batches),
                                   "--target", "default", "--id", "application_id", "--time",
                                   "event_time", "--null", "2", "--onset", "1", "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert body["null"]["false_drift"] == 0 and body["null"]["false_retrains_per_year"] == 0.0
    assert body["onset"]["onset"] == 1 and body["onset"]["detection_delay"] == 0
    bad = CliRunner().invoke(app, ["backtest", "--reference", str(ref), "--batches", str(batches),
                                   "--null", "-1"])
    assert bad.exit_code == 1 and "--null -1" in bad.output
