"""The validate cache's pure parts: what a kept verdict depends on (the key), when it still
holds as the clock moves its event-time bounds, and how damaged entries are refused."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from driftloop.contract.cache import (
    UNKNOWN,
    Verdict,
    VerdictCache,
    bounds_hold,
    column_ranges,
    contract_key,
    reuse,
)
from driftloop.contract.failure import Failure
from driftloop.contract.suite import EARLIEST, LATEST, time_parameters
from tests.helpers import section

SUITE = {"name": "s", "expectations": [
    {"type": "expect_column_values_to_be_between", "meta": {"severity": "error"},
     "kwargs": {"column": "t", "max_value": {"$PARAMETER": LATEST}}},
    {"type": "expect_column_values_to_be_between", "meta": {"severity": "error"},
     "kwargs": {"column": "t", "min_value": {"$PARAMETER": EARLIEST}}},
    {"type": "expect_column_values_to_be_between", "meta": {"severity": "error"},
     "kwargs": {"column": "age", "min_value": 18, "max_value": 100}}]}


def bounds(now: str, max_age_days: int = 100) -> dict:
    return time_parameters(pd.Timestamp(now), max_age_days=max_age_days, clock_skew_minutes=5)


def ranges(lo: str, hi: str) -> dict:
    return {"t": [pd.Timestamp(lo).isoformat(), pd.Timestamp(hi).isoformat()]}


WARN = Failure("b.parquet", "expect_table_row_count_to_be_between", None, "warn", None, None,
               detail="observed value 200")


@pytest.mark.parametrize(("events", "then", "now", "holds"), [
    # a week of events checked on 2026-03-01 (earliest allowed: 2025-11-21)
    (("2026-02-01", "2026-02-07"), "2026-03-01", "2026-03-01", True),    # same day
    (("2026-02-01", "2026-02-07"), "2026-03-01", "2026-04-01", True),    # still inside both bounds
    (("2026-02-01", "2026-02-07"), "2026-03-01", "2026-05-14", False),   # earliest passes some rows
    (("2026-02-01", "2026-02-07"), "2026-03-01", "2026-06-01", False),   # ... or all of them
    (("2025-01-01", "2025-01-07"), "2026-03-01", "2026-06-01", True),    # too old then and now
    (("2026-02-01", "2026-03-03"), "2026-03-01", "2026-04-01", False),   # was in the future
])
def test_a_verdict_holds_while_no_event_crosses_a_bound(events, then, now, holds):
    assert bounds_hold(ranges(*events), bounds(then), bounds(now), SUITE) is holds


def test_columns_that_cannot_be_compared_never_hold_and_empty_ones_always_do():
    then, now = bounds("2026-03-01"), bounds("2026-04-01")
    assert not bounds_hold({"t": UNKNOWN}, then, now, SUITE)
    assert not bounds_hold({}, then, now, SUITE)  # range never recorded
    assert bounds_hold({"t": None}, then, now, SUITE)  # missing or all null: no row compared
    assert bounds_hold({}, then, now, {"expectations": SUITE["expectations"][2:]})  # nothing bounded


def test_column_ranges_record_what_the_checks_compared():
    frame = pd.DataFrame({"t": pd.to_datetime(["2026-02-03", None, "2026-02-01"]),
                          "age": [30, 40, 50]})
    assert column_ranges(frame, SUITE) == {"t": ["2026-02-01T00:00:00", "2026-02-03T00:00:00"]}
    assert column_ranges(frame.assign(t=["x", "y", "z"]), SUITE) == {"t": UNKNOWN}
    assert column_ranges(frame.drop(columns="t"), SUITE) == {"t": None}
    assert column_ranges(frame.assign(t=pd.NaT), SUITE) == {"t": None}


def test_key_changes_with_the_suite_the_verdict_knobs_and_the_code(tmp_path):
    vp = section("validate")
    code = tmp_path / "stage.py"
    code.write_text("A = 1\n")
    base = contract_key(SUITE, vp, [code])
    assert contract_key(json.loads(json.dumps(SUITE)), vp, [code]) == base  # same content
    edited = json.loads(json.dumps(SUITE))
    edited["expectations"][2]["kwargs"]["max_value"] = 90
    assert contract_key(edited, vp, [code]) != base
    for knob, value in (("fail_on", "warn"), ("max_age_days", 30), ("clock_skew_minutes", 0)):
        assert contract_key(SUITE, section("validate", **{knob: value}), [code]) != base, knob
    # knobs that never change a batch's verdict keep the kept verdicts
    leak = vp.leakage.model_copy(update={"max_auc": 0.6})
    for knob, value in (("workers", 7), ("cache", False), ("leakage", leak)):
        assert contract_key(SUITE, vp.model_copy(update={knob: value}), [code]) == base, knob
    code.write_text("A = 2\n")
    assert contract_key(SUITE, vp, [code]) != base


def test_entries_round_trip_atomically_and_are_renamed_to_the_batch(tmp_path):
    cache = VerdictCache(tmp_path / "cache", "c" * 64)
    batch = tmp_path / "b.parquet"
    batch.write_bytes(b"some bytes")
    key = cache.key(batch)
    assert cache.get(key) is None and cache.ignored == []  # not kept yet: not damaged
    verdict = Verdict([WARN], ranges("2026-02-01", "2026-02-07"), bounds("2026-03-01"))
    cache.put(key, batch.name, verdict)
    assert [p.name for p in cache.folder.iterdir()] == [f"{key}.json"]  # no temp file left
    again = cache.get(key)
    assert again.failures == [WARN] and again.ranges == verdict.ranges
    (renamed,) = reuse(again, "c.parquet", bounds("2026-03-02"), SUITE)
    assert renamed.batch == "c.parquet" and renamed.line().startswith("c.parquet: ")
    assert reuse(again, "b.parquet", bounds("2026-05-14"), SUITE) is None  # rows changed sides
    batch.write_bytes(b"other bytes")
    assert cache.key(batch) != key


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],                                   # truncated
    lambda text: "\x00\x01 not json",                                      # garbage
    lambda text: text.replace('"format": 1', '"format": 0'),                # another layout
    lambda text: json.dumps({**json.loads(text), "key": "f" * 64}),         # copied from elsewhere
    lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "failures"}),
    lambda text: json.dumps({**json.loads(text), "failures": [{"nope": 1}]}),
    lambda text: json.dumps({**json.loads(text), "ranges": []}),
])
def test_a_damaged_entry_is_ignored_and_logged_never_trusted(tmp_path, caplog, damage):
    cache = VerdictCache(tmp_path, "c" * 64)
    cache.put("k.parquet", "b.parquet", Verdict([WARN], {}, {}))
    entry = cache.entry("k.parquet")
    entry.write_text(damage(entry.read_text()))
    with caplog.at_level(logging.WARNING, logger="driftloop.contract.cache"):
        assert cache.get("k.parquet") is None
    assert cache.ignored == [str(entry)]
    assert str(entry) in caplog.text and "checked again" in caplog.text
