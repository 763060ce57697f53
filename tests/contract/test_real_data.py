"""A contract drafted from real data (hotel bookings, public, CC BY 4.0) holds on later data of
the same source, and the leakage guard finds the post-outcome column."""

from __future__ import annotations

import pandas as pd
import pytest

from driftloop.contract.check import Validator, check_frame, is_blocking, leakage_failures
from driftloop.contract.suite import draft_suite
from tests.helpers import ROOT, section

HOTEL = ROOT.parent / "shared" / "data" / "hotel_bookings.parquet"
pytestmark = pytest.mark.skipif(not HOTEL.exists(),
                                reason=f"real data not present (looked for ../shared/data/{HOTEL.name})")


@pytest.fixture(scope="module")
def halves():
    df = pd.read_parquet(HOTEL)
    arrival = pd.to_datetime(df["arrival_date_year"].astype(str) + "-" + df["arrival_date_month"]
                             + "-" + df["arrival_date_day_of_month"].astype(str), format="%Y-%B-%d")
    df = df.assign(arrival_date=arrival).sort_values("arrival_date", kind="stable")
    half = len(df) // 2
    return df.iloc[:half].reset_index(drop=True), df.iloc[half:].reset_index(drop=True)


def test_drafted_contract_passes_the_later_half_with_warnings_at_most(halves):
    first, second = halves
    suite = draft_suite(first, name="hotel", target="is_canceled", time_col="arrival_date")
    now = second["arrival_date"].max() + pd.Timedelta(days=1)
    params = {"latest_event_time": now, "earliest_event_time": now - pd.Timedelta(days=3650)}
    failures = check_frame(Validator(suite, params), second, "second_half.parquet")
    assert [f.line() for f in failures if f.severity == "error"] == []
    # and the same contract stops a broken copy of that half
    broken = second.assign(adr=second["adr"] * 1000, country=second["country"].where(
        second.index % 10 != 0, "ATLANTIS"))
    errors = {f.column for f in check_frame(Validator(suite, params), broken, "b") if f.severity == "error"}
    assert {"adr", "country"} <= errors


def test_leakage_guard_names_reservation_status(halves):
    first, _ = halves
    features = [c for c in first.columns if c not in ("is_canceled", "arrival_date")]
    found = leakage_failures(section("validate"), first, "is_canceled", features, batch="first_half")
    assert "reservation_status" in {f.column for f in found}
    (f,) = [f for f in found if f.column == "reservation_status"]
    assert f.severity == "warn" and not is_blocking(f, "error") and "AUC" in f.detail
