"""The demo suite against good and bad batches (real Great Expectations)."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from driftloop.config import load_params
from driftloop.contract.check import check_frame, validator_for
from driftloop.simulate import simulate_week
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def validator():
    return validator_for(load_params(ROOT / "params.yaml"), now=pd.Timestamp("2026-06-01"))


@pytest.fixture
def batch():
    return simulate_week(2, rows=800, seed=7, start=date(2026, 1, 5), drift=False)


def fails(validator, df):
    return check_frame(validator, df, "b.parquet")


def test_good_and_drifted_batches_pass(validator, batch):
    assert fails(validator, batch) == []
    drifted = simulate_week(9, rows=800, seed=7, start=date(2026, 1, 5), drift=True)
    assert fails(validator, drifted) == []


def test_missing_column_is_named(validator, batch):
    f = fails(validator, batch.drop(columns=["income"]))
    assert any(x.check == "expect_table_columns_to_match_set" and x.column == "income"
               and "missing columns ['income']" in x.line() for x in f)
    assert all(x.severity == "error" for x in f)


def test_out_of_range_values_are_named_with_samples(validator, batch):
    batch.loc[[3, 8], "age"] = [150.0, 7.0]
    (f,) = [x for x in fails(validator, batch) if x.column == "age"]
    assert f.unexpected_count == 2 and sorted(f.sample_values) == [7.0, 150.0]
    assert "age" in f.line() and "150.0" in f.line()


def test_duplicate_ids_null_target_and_third_class(validator, batch):
    batch.loc[5, "application_id"] = batch.loc[4, "application_id"]
    batch["default"] = batch["default"].astype(float)
    batch.loc[6, "default"] = np.nan
    batch.loc[7, "default"] = 2
    cols = {(x.check, x.column) for x in fails(validator, batch)}
    assert ("expect_column_values_to_be_unique", "application_id") in cols
    assert ("expect_column_values_to_not_be_null", "default") in cols
    assert ("expect_column_values_to_be_in_set", "default") in cols


def test_unseen_categories_above_tolerance(validator, batch):
    batch.loc[:100, "channel"] = "carrier_pigeon"
    (f,) = [x for x in fails(validator, batch) if x.column == "channel"]
    assert "carrier_pigeon" in f.sample_values
