"""Pure parts of `driftloop replay`: task from the target, periods, the summary figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftloop.cli.monitor import replay_text
from driftloop.monitor.replay import (
    ReplayError,
    cut_periods,
    gap_closed,
    infer_task,
    performance_drop,
)


@pytest.mark.parametrize("values, task", [
    ([0, 1, 1, 0], "binary"),
    ([True, False, True], "binary"),
    (["a", "b", "c", "a"], "multiclass"),
    ([1, 2, 3, 2, 1], "multiclass"),
    (list(np.linspace(0, 100, 50)), "regression"),
    (list(range(100)), "regression"),  # many integer values: a count, not classes
])
def test_the_task_follows_the_target(values, task):
    assert infer_task(pd.Series(values, name="y")) == task


def test_a_single_valued_target_is_refused_by_name():
    with pytest.raises(ReplayError, match="'y' holds a single value"):
        infer_task(pd.Series([1, 1, 1], name="y"))


def frame(days: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"t": days, "x": range(len(days))})


def test_periods_are_consecutive_and_labelled():
    periods = cut_periods(frame(["2024-01-03", "2024-01-20", "2024-02-11", "2024-03-30"]), "t", "month")
    assert [p.label for p in periods] == ["2024-01", "2024-02", "2024-03"]
    assert [len(p.frame) for p in periods] == [2, 1, 1]
    assert periods[0].end.isoformat().startswith("2024-01-31T23:59:59")
    weeks = cut_periods(frame(["2024-01-01", "2024-01-08", "2024-01-09"]), "t", "week")
    assert [len(p.frame) for p in weeks] == [1, 2]


def test_timezone_aware_and_naive_times_cut_the_same():
    naive = cut_periods(frame(["2024-01-03", "2024-02-11"]), "t", "month")
    aware = cut_periods(frame(["2024-01-03T00:00:00+00:00", "2024-02-11T00:00:00+00:00"]), "t", "month")
    assert [p.label for p in naive] == [p.label for p in aware]


@pytest.mark.parametrize("df, message", [
    (frame(["2024-01-03", "2024-03-30"]), "period 2024-02 has no rows"),
    (frame(["2024-01-03", "not a date"]), "'t': 1 value\\(s\\) are not times, e.g. 'not a date'"),
    (frame(["2024-01-03"]).rename(columns={"t": "when"}), "no time column 't'"),
])
def test_bad_time_columns_are_named(df, message):
    with pytest.raises(ReplayError, match=message):
        cut_periods(df, "t", "month")


def test_gap_closed_and_performance_drop_respect_the_metric_direction():
    assert gap_closed(0.85, 0.80, 0.90) == pytest.approx(0.5)
    assert gap_closed(0.80, 0.80, 0.80) is None
    assert gap_closed(12.0, 14.0, 10.0) == pytest.approx(0.5)  # rmse: lower is better
    assert performance_drop("auc", 0.80, 0.75) == pytest.approx(0.05)
    assert performance_drop("rmse", 10.0, 12.0) == pytest.approx(2.0)


def test_replay_text_has_a_row_per_period_and_the_summary():
    rows = [{"period": "2024-07", "rows": 10, "serving_version": 1, "auc_policy": 0.8,
             "auc_never": 0.8, "auc_always": 0.82, "drift_status": "drift", "action": "retrain",
             "gate": "promoted v2: ..."}]
    summary = {"metric": "auc", "gap_closed": 0.0,
               **{s: {"mean_metric": 0.8, "retrains": 1, "promotions": 1} for s in
                  ("policy", "never", "always")}}
    setup = {"task": "binary", "every": "month", "initial_periods": 6, "label_delay_periods": 1,
             "first_test_metric": 0.81}
    text = replay_text({"periods": rows, "summary": summary, "setup": setup})
    assert "2024-07" in text and "promoted v2" in text and "closes 0% of the never -> always gap" in text


def test_a_regression_replay_measures_and_names_its_drop_in_the_task_metric():
    from driftloop.monitor.replay import replay_params
    from tests.helpers import demo_params

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"t": pd.date_range("2026-01-01", periods=200, freq="D"),
                       "x": rng.normal(size=200), "y": rng.normal(size=200) * 10})
    p = replay_params(demo_params(), df, target="y", time_col="t", id_col=None, drop=[])
    assert p.task == "regression" and p.register_.metric == "rmse"
    assert p.policy.performance_metric == "rmse"
    assert p.data.numerical == ["x"]
