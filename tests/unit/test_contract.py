"""Pure contract logic: leakage AUC, drafting, failure rows, quarantine moves, reasons (the CLI,
which runs Great Expectations, is tested in tests/contract/test_cli_contract.py)."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from driftloop.contract.check import contract_reason, failures_markdown
from driftloop.contract.quarantine import QuarantineError, list_quarantined, quarantine, release, render_html
from driftloop.contract.suite import (
    auc,
    draft_suite,
    explain,
    gx_suite,
    leaky_features,
    single_feature_auc,
    text_type_errors,
    time_parameters,
)
from driftloop.io import window_file
from driftloop.simulate import simulate_week
from pipelines.validate import (
    Part,
    drawn,
    kept_rows,
    leakage_frame,
    leakage_shares,
    plan_workers,
    window_layout_failures,
)


def frame(rows=2000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    return pd.DataFrame({"noise": rng.normal(size=rows), "status": np.where(y == 1, "gone", "stayed"),
                         "mirror": y * 2.0 + rng.normal(0, 0.01, rows),
                         "row_id": [f"r{i}" for i in range(rows)], "y": y})


def test_auc_matches_known_orderings():
    y = np.array([0, 0, 1, 1])
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 1.0
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5


def test_leakage_names_leaky_columns_but_not_noise_or_ids():
    df = frame()
    found = dict(leaky_features(df, "y", ["noise", "status", "mirror", "row_id"], max_auc=0.98,
                                sample_rows=10_000, seed=0))
    assert set(found) == {"status", "mirror"} and min(found.values()) > 0.99
    assert single_feature_auc(df["row_id"], df["y"].astype(float)) < 0.6  # ids do not "leak"
    assert leaky_features(df.assign(y=df["y"] + df["noise"]), "y", ["mirror"], max_auc=0.98,
                          sample_rows=10_000, seed=0) == []  # not a binary target


def test_time_parameters_bound_events_around_now():
    p = time_parameters(pd.Timestamp("2026-06-01", tz="UTC"), max_age_days=10, clock_skew_minutes=5)
    assert p["latest_event_time"] == pd.Timestamp("2026-06-01 00:05")
    assert p["earliest_event_time"] == pd.Timestamp("2026-05-22")


def test_explain_gives_rows_and_values():
    df = pd.DataFrame({"a": [1.0, 99.0, np.nan, np.inf], "s": ["x", "7", None, "y"]})
    assert explain(df, "expect_column_values_to_be_between", {"column": "a", "max_value": 10}, 20) \
        == ([99.0, "inf"], [1, 3])
    assert explain(df, "expect_column_values_to_not_be_null", {"column": "s"}, 20) == ([None], [2])
    assert explain(df, "expect_column_values_to_be_in_type_list",
                   {"column": "s", "type_list": ["float64"]}, 20) == (["x", "y"], [0, 3])


def test_draft_suite_has_every_kind_of_check():
    df = simulate_week(0, rows=500, seed=1, start=date(2026, 1, 5), drift=False)
    suite = draft_suite(df, name="d", target="default", id_col="application_id", time_col="event_time")
    kinds = {(e["type"], e["kwargs"].get("column"), e["meta"]["severity"]) for e in suite["expectations"]}
    assert ("expect_column_values_to_be_unique", "application_id", "error") in kinds
    assert ("expect_column_values_to_not_be_null", "default", "error") in kinds
    assert ("expect_column_mean_to_be_between", "default", "error") in kinds
    assert ("expect_column_values_to_be_in_set", "channel", "warn") in kinds
    assert ("expect_column_values_to_be_between", "age", "error") in kinds
    (rng,) = [e for e in suite["expectations"] if e["kwargs"].get("column") == "age"
              and e["type"] == "expect_column_values_to_be_between" and e["meta"]["severity"] == "error"]
    lo, hi = df["age"].min(), df["age"].max()
    assert rng["kwargs"]["min_value"] < lo and rng["kwargs"]["max_value"] > hi
    assert suite["meta"]["target"] == "default"


def report(batch="batch_x.parquet"):
    return {"batch": batch, "quarantined": ["data/quarantine/batch_x"], "failures": [
        {"batch": batch, "check": "expect_column_values_to_be_between", "column": "age",
         "severity": "error", "unexpected_count": 2, "unexpected_percent": 0.4,
         "sample_values": [150.0, "<b>"], "rows": [3, 8], "detail": "", "blocking": True,
         "line": f"{batch}: expect_column_values_to_be_between failed on column 'age'"}]}


def test_reason_is_one_line_naming_batch_column_and_place():
    reason = contract_reason(report())
    assert "\n" not in reason and "batch_x.parquet" in reason and "'age'" in reason
    assert "data/quarantine/batch_x" in reason
    md = failures_markdown(report())
    assert "| **error** | batch_x.parquet |" in md and "row 3: 150.0" in md


def test_html_report_is_self_contained_and_escaped():
    html = render_html(report())
    assert "<script" not in html and "http" not in html and "&lt;b&gt;" in html
    assert "row 3: 150.0" in html


def test_quarantine_then_release_moves_the_same_bytes(tmp_path):
    raw, window, q, landing = (tmp_path / d for d in ("raw", "window", "q", "landing"))
    raw.mkdir()
    window.mkdir()
    (raw / "batch_x.parquet").write_bytes(b"PAR1 data")
    (window / "batch_x.parquet").hardlink_to(raw / "batch_x.parquet")
    folder = quarantine([raw / "batch_x.parquet", window / "batch_x.parquet"], q / "batch_x", report())
    assert not (raw / "batch_x.parquet").exists() and not (window / "batch_x.parquet").exists()
    assert json.loads((folder / "report.json").read_text())["failures"][0]["column"] == "age"
    assert [r["batch"] for r in list_quarantined(q)] == ["batch_x"]
    dst = release(q, "batch_x", landing)
    assert dst.read_bytes() == b"PAR1 data" and list_quarantined(q) == []
    assert (folder / "released-report.json").exists()
    with pytest.raises(QuarantineError, match="already released"):
        release(q, "batch_x", landing)


def _suite():
    def e(kind, **kw):
        return {"type": f"expect_{kind}", "kwargs": kw, "meta": {"severity": "error"}}
    return {"name": "s", "expectations": [
        e("column_values_to_be_in_type_list", column="city", type_list=["object", "str"]),
        e("column_values_to_be_in_set", column="city", value_set=["Oslo", "Rome"]),
        e("column_values_to_be_in_type_list", column="note", type_list=["object", "str"]),
        e("column_values_to_be_in_type_list", column="n", type_list=["int64"])]}


def test_gx_suite_hands_text_type_checks_of_categoricals_to_driftloop_and_keeps_positions():
    out = gx_suite(_suite())
    # `city` has an allowed set, so GE gets it as a categorical and its type check stays here
    assert [(e["kwargs"]["column"], e["meta"]["suite_index"]) for e in out["expectations"]] == [
        ("city", 1), ("note", 2), ("n", 3)]
    assert "suite_index" not in _suite()["expectations"][1]["meta"]


def test_text_type_errors_name_numbers_in_a_text_column():
    ok = pd.DataFrame({"city": pd.Categorical(["Oslo", "Rome", None])})
    assert text_type_errors(ok, _suite()) == []
    mixed = pd.DataFrame({"city": pd.Categorical(["Oslo", 7, 7])})
    ((cfg, count, detail),) = text_type_errors(mixed, _suite())
    assert cfg["kwargs"]["column"] == "city" and count == 2 and "not text" in detail
    numbers = pd.DataFrame({"city": [1.5, None]})
    ((_, count, detail),) = text_type_errors(numbers, _suite())
    assert count == 1 and "float64" in detail


def test_plan_workers_forks_only_for_large_windows_of_several_batches():
    assert plan_workers(0, batches=10, rows=1_000_000, cores=2) == 2
    assert plan_workers(0, batches=10, rows=1_000, cores=2) == 1
    assert plan_workers(0, batches=1, rows=1_000_000, cores=8) == 1
    assert plan_workers(1, batches=10, rows=1_000_000, cores=8) == 1
    assert plan_workers(4, batches=3, rows=1_000_000, cores=2) == 3
    assert plan_workers(0, batches=10, rows=10, cores=4, min_rows=0) == 4


def _part(name, table):
    return Part(name, table.num_rows, table.schema, table, None, lambda: table)


def test_window_promotes_compatible_types_and_names_columns_that_cannot_be_joined(tmp_path):
    import pyarrow as pa

    from driftloop.io import read_window, write_arrow

    def part(name, table):
        write_arrow(tmp_path / window_file(name), table)
        return _part(name, table)

    ints = part("a.parquet", pa.table({"n": pa.array([1, 2]), "s": pa.array(["a", "b"])}))
    floats = part("b.csv", pa.table({"n": pa.array([0.5, None]),
                                     "s": pa.array([None, None], pa.null())}))
    assert window_layout_failures([ints, floats]) == []
    window = read_window(tmp_path)  # what the split reads: the files in the batches' order
    assert window.column("n").to_pylist() == [1.0, 2.0, 0.5, None]
    assert window.column("s").to_pylist() == ["a", "b", None, None]
    clash = part("c.parquet", pa.table({"n": pa.array([1.0, 2.0]), "s": pa.array([1.5, 2.5])}))
    (problem,) = window_layout_failures([ints, clash])
    assert problem.column == "s" and problem.severity == "error"
    same = _part("b.csv.parquet", floats.data)  # b.csv goes in under this name
    (problem,) = window_layout_failures([ints, floats, same])
    assert problem.check == "window_file_names_unique" and "b.csv.parquet" in problem.detail


@pytest.mark.parametrize("rows, sample, expected", [
    ([700, 0, 1300, 500], 1000, [280, 0, 520, 200]),
    ([1, 1, 1], 2, [1, 1, 0]),             # equal remainders: the earlier batch first
    ([333, 333, 334], 100, [33, 33, 34]),
    ([10, 20], 1000, [10, 20]),            # the whole window fits: every row
])
def test_each_batch_gives_the_leakage_sample_its_share_of_rows(rows, sample, expected):
    shares = leakage_shares(rows, sample)
    assert shares == expected and sum(shares) == min(sample, sum(rows))
    assert all(0 <= k <= n for k, n in zip(shares, rows, strict=True))


def test_the_leakage_sample_takes_each_batchs_share_of_its_drawn_rows():
    import pyarrow as pa

    from driftloop.config import LeakageParams

    lk = LeakageParams(max_auc=0.98, severity="warn", sample_rows=1000, seed=4)
    rng = np.random.default_rng(3)
    frames = [pd.DataFrame({"y": rng.integers(0, 2, n), "x": rng.normal(size=n),
                            "c": rng.choice(["u", "v", None], n)}) for n in (700, 0, 1300, 500)]
    frames[2]["c"] = frames[2]["c"].astype("category")  # read dictionary-encoded: text again
    parts = [_part(f"b{i}.parquet", pa.Table.from_pandas(f, preserve_index=False))
             for i, f in enumerate(frames)]
    expected = pd.concat([f.iloc[np.random.RandomState(4).permutation(len(f))[:k]]
                          for f, k in zip(frames, [280, 0, 520, 200], strict=True)],
                         ignore_index=True).astype({"c": object})
    got = leakage_frame(parts, ["y", "x", "c", "absent"], lk)
    pd.testing.assert_frame_equal(got, expected)
    # a kept sample (the start of the draw) gives the same rows; one too short is not used
    for part, rows in zip(parts, [560, 0, 1000, 100], strict=True):
        part.kept = drawn(part, rows, lk)
    pd.testing.assert_frame_equal(leakage_frame(parts, ["y", "x", "c", "absent"], lk), expected)
    whole = leakage_frame(parts, ["y", "x"], lk.model_copy(update={"sample_rows": 5000}))
    assert len(whole) == 2500 and whole["x"].sum() == pytest.approx(  # the window fits: all
        sum(f["x"].sum() for f in frames))


def test_the_cache_keeps_twice_a_batchs_share_of_the_sample():
    assert kept_rows(5000, rows=100_000, sample_rows=50_000) == 10_000
    assert kept_rows(100, rows=100_000, sample_rows=50_000) == 1024     # not smaller than this
    assert kept_rows(30_000, rows=100_000, sample_rows=50_000) == 50_000
    assert kept_rows(400, rows=500, sample_rows=50_000) == 500


def test_the_window_and_splits_keep_statistics_for_all_but_text_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from driftloop.io import write_arrow

    table = pa.table({"city": ["a", "b", None], "age": [30, None, 41], "income": [1.5, 2.5, 3.5]})
    write_arrow(tmp_path / "w.parquet", table)
    assert pq.read_table(tmp_path / "w.parquet").equals(table)
    group = pq.read_metadata(tmp_path / "w.parquet").row_group(0)
    stats = {group.column(i).path_in_schema: group.column(i).statistics for i in range(3)}
    assert stats["city"] is None
    assert (stats["age"].min, stats["age"].max, stats["income"].max) == (30, 41, 3.5)
