from datetime import date

import pandas as pd
import pytest

from driftloop.simulate import drift_strength, labels_due, run, simulate_week, write_labels
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


def test_the_mix_shifts_at_once_and_the_concept_ramps_with_the_strength():
    strengths = [1 / 3, 2 / 3, 1.0]
    weeks = [week(5, drift=s, rows=20_000) for s in strengths]
    features = [w.drop(columns="default") for w in weeks]
    for f in features[1:]:
        pd.testing.assert_frame_equal(f, features[0])  # covariates: fully shifted at any strength
    mobile = [w.loc[w["channel"] == "mobile", "default"].mean()
              - w.loc[w["channel"] != "mobile", "default"].mean() for w in weeks]
    heavy_debt = [w.loc[w["debt_to_income"] > 0.45, "default"].mean() for w in weeks]
    assert mobile == sorted(mobile) and mobile[-1] > mobile[0] + 0.05
    assert heavy_debt == sorted(heavy_debt) and heavy_debt[-1] > heavy_debt[0] + 0.05


@pytest.mark.parametrize("w,drift_from,ramp,expected", [
    (8, None, 3, 0.0), (8, 9, 3, 0.0), (9, 9, 3, 1 / 3), (10, 9, 3, 2 / 3), (11, 9, 3, 1.0),
    (30, 9, 3, 1.0), (9, 9, 1, 1.0)])
def test_drift_strength_ramps_in_equal_steps(w, drift_from, ramp, expected):
    assert drift_strength(w, drift_from, ramp) == pytest.approx(expected)


@pytest.mark.parametrize("weeks,delay,expected", [
    ([10], 7, [9]), ([10], 0, [10]), ([10], 10, [8]), ([10, 11, 12], 7, [9, 10, 11]),
    ([0], 7, [])])
def test_each_week_brings_the_labels_of_the_week_delay_days_before(weeks, delay, expected):
    assert labels_due(weeks, delay) == expected


def test_labels_arrive_apart_from_the_unlabelled_batch(tmp_path):
    p = demo_params()
    p = p.model_copy(update={"root": tmp_path,
                             "simulate": p.simulate.model_copy(update={"rows_per_week": 300})})
    (batch,) = run(p, [10], drift_from_week=9, out_dir=tmp_path / "incoming", labelled=False)
    (labels,) = write_labels(p, [9], drift_from_week=9)
    (landed,) = run(p, [9], drift_from_week=9)
    scored = pd.read_parquet(batch)
    assert p.data.target not in scored.columns and len(scored) == 300
    lab, full = pd.read_parquet(labels), pd.read_parquet(landed)
    assert labels.parent == tmp_path / p.paths.labels and labels.name == "labels_2026-03-09.parquet"
    assert landed.parent == tmp_path / p.paths.landing and landed.name == "batch_2026-03-09.parquet"
    assert list(lab.columns) == [p.data.id, p.data.target, "labeled_at"]
    pd.testing.assert_frame_equal(lab[[p.data.id, p.data.target]], full[[p.data.id, p.data.target]])
    week_end = pd.Timestamp("2026-03-16")
    assert (lab["labeled_at"] == week_end + pd.Timedelta(days=p.simulate.label_delay_days)).all()
    assert (full[p.data.time] < week_end).all()


def test_the_cli_writes_the_labels_due_by_the_newest_week(tmp_path):
    from typer.testing import CliRunner

    from driftloop.cli import app
    from tests.helpers import ROOT

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text().replace(
        "rows_per_week: 1500", "rows_per_week: 200"))
    res = CliRunner().invoke(app, ["simulate", "--weeks", "3", "--labels",
                                   "--params", str(tmp_path / "params.yaml")])
    assert res.exit_code == 0, res.output
    assert sorted(f.name for f in (tmp_path / "data/labels").iterdir()) == [
        "labels_2026-01-05.parquet", "labels_2026-01-12.parquet"]  # week 2's arrive a week later
    assert len(list((tmp_path / "data/landing").glob("batch_*.parquet"))) == 3
