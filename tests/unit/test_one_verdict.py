"""One verdict everywhere: the Evidently report a person opens marks the columns that
verdict.json (and so the policy, the Prefect table and the MLflow run) calls drifted."""

from datetime import date

import numpy as np
import pytest

from driftloop.monitor.drift import PREDICTION, check_frames, column_thresholds, parse_report
from driftloop.simulate import simulate_week
from tests.helpers import demo_params


def report_drifted(snap) -> set[str]:
    return {c.column for c in parse_report(snap.dict()).columns if c.drifted}


@pytest.mark.parametrize("rows,drift", [(300, True), (300, False), (1500, True)])
def test_the_saved_report_marks_the_columns_the_verdict_does(rows, drift, tmp_path):
    p = demo_params()
    d = p.data
    rng = np.random.default_rng(0)
    ref = simulate_week(0, rows=2000, seed=3, start=date(2026, 1, 5), drift=False)
    cur = simulate_week(12, rows=rows, seed=4, start=date(2026, 1, 5), drift=drift)
    ref[PREDICTION], cur[PREDICTION] = rng.random(len(ref)), rng.random(len(cur))
    snap, result = check_frames(ref, cur, numerical=d.numerical, categorical=d.categorical,
                                dp=p.drift)
    in_report = report_drifted(snap) - {PREDICTION}
    missing_only = {c["column"] for c in result["columns"]
                    if c["drifted"] and c["why"].startswith("missing")}
    assert in_report == set(result["drifted_columns"]) - missing_only
    pred = result["prediction_drift"]
    assert (PREDICTION in report_drifted(snap)) == pred["drifted"]
    share_test = next(t for t in snap.dict()["tests"] if t["name"].startswith("Share of Drifted"))
    assert (share_test["status"] == "FAIL") == (result["status"] == "drift")  # dataset level too
    # small batches: noise lifts some columns' thresholds above drift.threshold, and the
    # report was handed those
    lifted = [c for c in result["columns"] if c["threshold"] > p.drift.threshold]
    if rows == 300:
        assert lifted, "expected noise floors above the threshold at 300 rows"
    assert all(c["threshold"] == pytest.approx(max(p.drift.threshold, c["noise_floor"]))
               for c in result["columns"])
    snap.save_html(str(tmp_path / "report.html"))  # the saved report renders those verdicts
    assert (tmp_path / "report.html").stat().st_size > 0


def test_column_thresholds_take_the_larger_of_threshold_and_noise():
    out = column_thresholds({"a": "psi", "b": "psi", PREDICTION: "wasserstein"},
                            {"a": 0.05, "b": 0.3, PREDICTION: 0.02}, threshold=0.1,
                            prediction_threshold=0.2)
    assert out == {"a": 0.1, "b": 0.3, PREDICTION: 0.2}


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_corrected_verdicts_reach_the_report_too(correction):
    """With Holm / BH the per-feature thresholds are the corrected critical values, and the
    report's dataset test gets the rule's count: report and verdict still agree."""
    p = demo_params()
    dp = type(p.drift).model_validate(
        {**p.drift.model_dump(), "correction": correction, "family_alpha": 0.1})
    numerical, categorical = ["age", "income", "credit_score", "savings_balance"], ["region", "channel"]
    ref = simulate_week(0, rows=2000, seed=3, start=date(2026, 1, 5), drift=False)
    cur = simulate_week(12, rows=1500, seed=4, start=date(2026, 1, 5), drift=True)
    snap, result = check_frames(ref, cur, numerical=numerical, categorical=categorical, dp=dp)
    assert result["rule"]["correction"] == correction and result["rule"]["rounds"] == 59
    missing_only = {c["column"] for c in result["columns"]
                    if c["drifted"] and c["why"].startswith("missing")}
    assert report_drifted(snap) == set(result["drifted_columns"]) - missing_only
    assert result["drifted_columns"] and result["status"] == "drift"
    share_test = next(t for t in snap.dict()["tests"] if t["name"].startswith("Share of Drifted"))
    assert (share_test["status"] == "FAIL") == (result["status"] == "drift")
