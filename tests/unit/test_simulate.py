from datetime import date

import pandas as pd
import pytest

from driftloop.simulate import simulate_week
from tests.helpers import demo_params

START = date(2026, 1, 5)


def week(w, drift=False, rows=4000, seed=7):
    return simulate_week(w, rows=rows, seed=seed, start=START, drift=drift)


def test_deterministic_per_seed_and_week():
    pd.testing.assert_frame_equal(week(3), week(3))
    assert not week(3)["income"].equals(week(4)["income"])
    assert not week(3)["income"].equals(week(3, seed=8)["income"])


def test_schema_matches_params_and_contract():
    p = demo_params()
    df = week(0)
    assert len(p.data.features) >= 20
    assert set(df.columns) == {p.data.id, p.data.time, p.data.target, *p.data.features}
    assert df[p.data.id].is_unique
    assert df[p.data.time].between(pd.Timestamp(START), pd.Timestamp(START) + pd.Timedelta(days=7)).all()
    assert df["merchant_category"].nunique() >= 40  # a high-cardinality categorical


def test_positive_rate_missing_values_and_imbalance():
    df = week(1)
    assert 0.05 <= df["default"].mean() <= 0.40
    assert df["income"].isna().mean() == pytest.approx(0.05, abs=0.015)
    assert df["employment_type"].isna().any()
    assert df["application_id"].notna().all() and df["default"].notna().all()


def test_drift_shifts_covariates_and_the_concept():
    base, drifted = week(5), week(5, drift=True)
    assert drifted["income"].median() < 0.9 * base["income"].median()
    assert (drifted["channel"] == "mobile").mean() > (base["channel"] == "mobile").mean() + 0.2
    assert drifted["default"].mean() > base["default"].mean()
