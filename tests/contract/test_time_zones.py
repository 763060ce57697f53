"""Zone-aware and naive event times get the same verdict: the contract compares times in UTC
(naive times are taken as UTC), through `driftloop validate` and the validate stage, with real
Great Expectations. A Parquet `timestamp[us, UTC]` column once crashed `validate`."""

from __future__ import annotations

import os
import shutil
from datetime import date

import pandas as pd
import pytest
from typer.testing import CliRunner

from driftloop.config import load_params
from driftloop.io import read_window
from driftloop.simulate import simulate_week
from pipelines.validate import run
from tests.helpers import ROOT

PROJECT = ["--params", str(ROOT / "params.yaml")]


def naive(rows: int = 400, week: int = 0) -> pd.DataFrame:
    return simulate_week(week, rows=rows, seed=3, start=date(2026, 1, 5), drift=False)


def in_zone(df: pd.DataFrame, zone: str, unit: str = "us") -> pd.DataFrame:
    """The same instants, stored zone-aware (UTC wall times converted to `zone`)."""
    t = df["event_time"].dt.tz_localize("UTC").dt.tz_convert(zone)
    return df.assign(event_time=t.astype(f"datetime64[{unit}, {zone}]"))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suite")
    naive(800, week=1).to_parquet(folder / "ref.parquet", index=False)
    out = folder / "s.json"
    r = CliRunner().invoke(__import__("driftloop.cli", fromlist=["app"]).app, [
        "contract", "init", str(folder / "ref.parquet"), "--target", "default", "--id",
        "application_id", "--time", "event_time", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def validate(path, suite):
    from driftloop.cli import app

    r = CliRunner().invoke(app, ["validate", str(path), "--suite", str(suite), *PROJECT])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r


WRITERS = {
    "parquet naive": lambda df, p: df.to_parquet(p.with_suffix(".parquet"), index=False),
    "parquet timestamp[us, UTC]": lambda df, p: in_zone(df, "UTC").to_parquet(
        p.with_suffix(".parquet"), index=False),
    "parquet timestamp[ns, America/New_York]": lambda df, p: in_zone(
        df, "America/New_York", "ns").to_parquet(p.with_suffix(".parquet"), index=False),
    "csv with +00:00 offsets": lambda df, p: in_zone(df, "UTC").to_csv(
        p.with_suffix(".csv"), index=False),
    "csv with mixed offsets": lambda df, p: df.assign(event_time=[
        t.tz_localize("UTC").tz_convert("Asia/Kolkata" if i % 2 else "America/Denver").isoformat()
        for i, t in enumerate(df["event_time"])]).to_csv(p.with_suffix(".csv"), index=False),
}


def written(tmp_path, kind: str, df: pd.DataFrame):
    WRITERS[kind](df, tmp_path / "batch")
    return next(tmp_path.glob("batch.*"))


@pytest.mark.parametrize("kind", list(WRITERS))
def test_aware_and_naive_times_pass_alike(tmp_path, suite, kind):
    r = validate(written(tmp_path, kind, naive()), suite)
    assert r.exit_code == 0, r.output
    assert "400 rows, 0 blocking failure(s)" in r.output


@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_future_event_is_caught_in_utc_whatever_the_zone(tmp_path, suite, kind):
    # one hour ahead in UTC is five hours *behind* as New York wall time: dropping the zone
    # instead of converting would let it through
    df = naive()
    future = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1)).tz_localize(None).floor("s")
    df.loc[7, "event_time"] = future
    r = validate(written(tmp_path, kind, df), suite)
    assert r.exit_code == 1, r.output
    assert "expect_column_values_to_be_between failed on column 'event_time'" in r.output
    assert f"row 7: '{future.isoformat()}'" in r.output


def test_validate_stage_joins_aware_and_naive_batches_as_utc(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "expectations", tmp_path / "expectations")
    params = load_params(tmp_path / "params.yaml")
    first, second = naive(600, week=0), naive(600, week=1)
    batches = {"batch_2026-01-05.parquet": first,
               "batch_2026-01-12.parquet": in_zone(second, "Europe/Berlin"),
               "batch_2026-01-19.csv": in_zone(naive(600, week=2), "UTC")}
    for folder in (params.path("raw"), params.path("window")):
        folder.mkdir(parents=True)
    for name, df in batches.items():
        raw = params.path("raw") / name
        (df.to_parquet if name.endswith(".parquet") else df.to_csv)(raw, index=False)
        os.link(raw, params.path("window") / name)
    summary = run(params, now=pd.Timestamp("2026-06-01"))
    assert summary["passed"] and summary["rows"] == 1800, summary["failures"]
    window = read_window(params.path("validated")).to_pandas()
    assert window["event_time"].dt.tz is None
    expected = pd.concat([first, second, naive(600, week=2)], ignore_index=True)["event_time"]
    assert window["event_time"].astype("datetime64[ns]").tolist() == expected.tolist()
