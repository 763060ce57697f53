"""The bad-input matrix: corrupt batches through the real validate stage (`run(params)`, real
Great Expectations) in a temporary project. Each must stop the stage with an error naming the
file, the column and the offending value, and land whole in quarantine: nothing is lost."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from driftloop.config import load_params
from driftloop.io import read_window
from driftloop.simulate import simulate_week
from pipelines.validate import ContractError, run
from tests.helpers import ROOT

NOW = pd.Timestamp("2026-06-01")
START = date(2026, 1, 5)
BAD = "batch_2026-01-12"


def good(week: int = 1, rows: int = 600) -> pd.DataFrame:
    return simulate_week(week, rows=rows, seed=7, start=START, drift=False)


@pytest.fixture
def project(tmp_path):
    """params.yaml and the demo suite in a temp folder, one good batch in raw + window."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "expectations").mkdir()
    shutil.copy(ROOT / "expectations/demo.json", tmp_path / "expectations/demo.json")
    params = load_params(tmp_path / "params.yaml")
    add_batch(params, "batch_2026-01-05.parquet", lambda p: good(0).to_parquet(p, index=False))
    return params


def add_batch(params, name: str, write) -> Path:
    """Write a batch into raw and hard-link it into the window, as ingest does."""
    raw, window = params.path("raw"), params.path("window")
    raw.mkdir(parents=True, exist_ok=True)
    window.mkdir(parents=True, exist_ok=True)
    write(raw / name)
    os.link(raw / name, window / name)
    return raw / name


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def with_values(column, rows, values, dtype=None):
    def corrupt(df):
        df = df.copy()
        if dtype:
            df[column] = df[column].astype(dtype)
        df.loc[rows, column] = values
        return df
    return corrupt


def parquet(corrupt):
    return ".parquet", lambda p: corrupt(good()).to_parquet(p, index=False)


def csv(corrupt, **kw):
    return ".csv", lambda p: corrupt(good()).to_csv(p, index=False, **kw)


def truncated(p: Path):
    good().to_parquet(p, index=False)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def latin1(p: Path):
    df = good()
    df.loc[5, "region"] = "région_Ä"
    df.to_csv(p, index=False, encoding="latin-1")


MATRIX = {
    # case: (file kind and writer, column named, offending value named)
    "missing column": (parquet(lambda d: d.drop(columns=["credit_score"])), "credit_score",
                       "missing columns ['credit_score']"),
    "extra column": (parquet(lambda d: d.assign(promo_code="X1")), "promo_code",
                     "unexpected columns ['promo_code']"),
    "renamed column": (parquet(lambda d: d.rename(columns={"income": "Income"})), "income",
                       "unexpected columns ['Income']"),
    "strings in a numeric column": (csv(with_values("age", [3, 9], "forty", object)), "age",
                                    "row 3: 'forty'"),
    "all-null column": (parquet(lambda d: d.assign(loan_amount=np.nan)), "loan_amount",
                        "600 unexpected (100.00%)"),
    "nulls in the target": (parquet(with_values("default", [4, 7], np.nan, float)), "default",
                            "row 4: None"),
    "third class in a binary target": (parquet(with_values("default", [11], 2)), "default",
                                       "row 11: 2"),
    "out-of-range values": (parquet(with_values("age", [8], 150.0)), "age", "row 8: 150.0"),
    "NaN and inf": (parquet(with_values("interest_rate", [2], np.inf)), "interest_rate",
                    "row 2: 'inf'"),
    "unseen categories above tolerance": (
        parquet(with_values("channel", list(range(0, 600, 20)), "carrier_pigeon")), "channel",
        "'carrier_pigeon'"),
    "duplicate ids": (parquet(with_values("application_id", [30], "A0001-000029")),
                      "application_id", "'A0001-000029'"),
    "zero rows": (parquet(lambda d: d.iloc[:0]), None, "observed value 0"),
    "header-only CSV": (csv(lambda d: d.iloc[:0]), None, "observed value 0"),
    "truncated parquet": ((".parquet", truncated), None, "corrupt or truncated"),
    "non-UTF-8 CSV": ((".csv", latin1), None, "not UTF-8"),
    "numbers in a text column": (parquet(lambda d: d.assign(region=7)), "region", "row 0: 7"),
    "future timestamps": (parquet(with_values("event_time", [1], pd.Timestamp("2027-01-01"))),
                          "event_time", "2027-01-01T00:00:00"),
}


@pytest.mark.parametrize("case", list(MATRIX))
def test_corrupt_batch_is_named_and_quarantined_whole(project, case):
    (suffix, write), column, value = MATRIX[case]
    name = BAD + suffix
    before = digest(add_batch(project, name, write))
    with pytest.raises(ContractError) as err:
        run(project, now=NOW)
    msg = str(err.value)
    assert name in msg and value in msg, msg
    if column:
        assert f"'{column}'" in msg or f"[{column!r}]" in msg, msg
    # the batch left raw and the window, byte for byte into quarantine, reports beside it
    folder = project.path("quarantine") / BAD
    assert digest(folder / name) == before
    assert not (project.path("raw") / name).exists() and not (project.path("window") / name).exists()
    report = json.loads((folder / "report.json").read_text())
    assert report["batch"] == name and all(f["batch"] == name for f in report["failures"])
    assert any(value in f["line"] for f in report["failures"])
    html = (folder / "report.html").read_text()
    assert "<script" not in html and "http" not in html and name in html
    # the good batch stays, and no validated window is written from a failed contract
    assert (project.path("raw") / "batch_2026-01-05.parquet").exists()
    assert not project.path("validated").exists()
    summary = json.loads((project.report_dir("validate") / "report.json").read_text())
    assert not summary["passed"] and summary["quarantined"] == [f"data/quarantine/{BAD}"]


def test_row_details_come_with_counts_and_at_most_20_samples(project):
    add_batch(project, BAD + ".parquet",
              lambda p: with_values("age", list(range(0, 600, 12)), 151.0)(good()).to_parquet(p))
    with pytest.raises(ContractError):
        run(project, now=NOW)
    report = json.loads((project.path("quarantine") / BAD / "report.json").read_text())
    (f,) = [f for f in report["failures"] if f["column"] == "age"]
    assert f["unexpected_count"] == 50 and f["unexpected_percent"] == pytest.approx(50 / 6)
    assert f["rows"] == list(range(0, 240, 12)) and f["sample_values"] == [151.0] * 20


def test_ten_times_larger_batch_is_a_warning_not_an_error(project):
    add_batch(project, BAD + ".parquet", lambda p: good(rows=6000).to_parquet(p, index=False))
    summary = run(project, now=NOW)
    assert summary["passed"] and summary["quarantined"] == []
    (warn,) = summary["failures"]
    assert warn["severity"] == "warn" and warn["check"] == "expect_table_row_count_to_be_between"
    assert "observed value 6000" in warn["line"] and not warn["blocking"]
    assert read_window(project.path("validated")).num_rows == 6600


def test_good_csv_batch_passes_with_its_time_column_parsed(project):
    add_batch(project, BAD + ".csv", lambda p: good().to_csv(p, index=False))
    assert run(project, now=NOW)["passed"]
    window = read_window(project.path("validated")).to_pandas()
    assert len(window) == 1200 and pd.api.types.is_datetime64_any_dtype(window["event_time"])
    assert window["region"].map(type).eq(str).all()  # text again, not categorical codes
    expected = pd.concat([good(0), good()], ignore_index=True)
    assert window["application_id"].tolist() == expected["application_id"].tolist()
    assert window["region"].tolist() == expected["region"].tolist()


def _copy_project(params, dest: Path):
    """The same project (params, suite, raw and window batches) under another folder."""
    for rel in ("params.yaml", "expectations", params.paths.raw, params.paths.window):
        src = params.root / rel
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / rel)
    return load_params(dest / "params.yaml")


def _workers(params, n: int):
    raw = yaml.safe_load((params.root / "params.yaml").read_text())
    raw["validate"]["workers"] = n
    (params.root / "params.yaml").write_text(yaml.safe_dump(raw))
    return load_params(params.root / "params.yaml")


def _outcome(params):
    try:
        summary = run(params, now=NOW, parallel_min_rows=0)
    except ContractError:
        summary = json.loads((params.report_dir("validate") / "report.json").read_text())
    out = params.path("validated")
    return summary, (read_window(out).to_pandas() if out.exists() else None)


@pytest.mark.parametrize("bad", [False, True])
def test_forked_workers_give_the_same_verdicts_and_window(project, tmp_path, bad):
    add_batch(project, "batch_2026-01-12.csv", lambda p: good(1).to_csv(p, index=False))
    add_batch(project, "batch_2026-01-19.parquet", lambda p: good(2, rows=6000).to_parquet(p))
    if bad:
        add_batch(project, "batch_2026-01-26.parquet",
                  lambda p: with_values("age", [8], 150.0)(good(3)).assign(region=7).to_parquet(p))
    (tmp_path / "twin").mkdir()
    twin = _workers(_copy_project(project, tmp_path / "twin"), 2)
    (one, window_one), (two, window_two) = _outcome(_workers(project, 1)), _outcome(twin)
    assert (one["workers"], two["workers"]) == (1, 2)
    assert {**one, "workers": 0} == {**two, "workers": 0}
    assert one["passed"] is not bad
    size = (None, "table_row_count_to_be_between")  # the 6000-row batch: a warning
    checked = {(f["column"], f["check"][7:]) for f in one["failures"]}
    assert checked == ({("age", "column_values_to_be_between"), ("region", "column_values_to_be_in_set"),
                        ("region", "column_values_to_be_in_type_list"), size} if bad else {size})
    if bad:
        assert window_one is None and window_two is None
    else:
        pd.testing.assert_frame_equal(window_one, window_two)


def test_fail_on_warn_makes_warnings_block(project, tmp_path):
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    raw["validate"]["fail_on"] = "warn"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(tmp_path / "params.yaml")
    add_batch(params, BAD + ".parquet", lambda p: good(rows=6000).to_parquet(p, index=False))
    with pytest.raises(ContractError, match="observed value 6000"):
        run(params, now=NOW)
    assert (params.path("quarantine") / BAD / (BAD + ".parquet")).exists()


def test_leakage_guard_names_the_column_and_blocks_when_set_to_error(project, tmp_path):
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    raw["validate"]["leakage"]["severity"] = "error"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(tmp_path / "params.yaml")
    for folder in (params.path("raw"), params.path("window")):
        (folder / "batch_2026-01-05.parquet").unlink()
    leaky = good()
    leaky["num_inquiries_6m"] = leaky["default"] * 3.0
    add_batch(params, BAD + ".parquet", lambda p: leaky.to_parquet(p, index=False))
    with pytest.raises(ContractError, match="single_feature_leakage failed on column 'num_inquiries_6m'"):
        run(params, now=NOW)
    # a window-level problem: no single batch is to blame, so nothing is quarantined
    assert not params.path("quarantine").exists()


@pytest.mark.parametrize("name,content", [
    ("batch_2026-03-30.parquet", b"PAR1\x00\x01truncated"),
    ("batch_2026-03-30.csv", "application_id,event_time\nA1,2026-03-30\nA2,caf\xe9\n".encode("latin-1")),
])
def test_unreadable_landed_file_is_quarantined_at_ingest(tmp_path, name, content):
    """A file that cannot even be read never enters raw: ingest quarantines it and stops."""
    from driftloop.config import load_params
    from pipelines import ingest
    from tests.helpers import make_project

    project = make_project(tmp_path / "p")
    params = load_params(project / "params.yaml")
    (params.path("landing") / name).write_bytes(content)
    with pytest.raises(ingest.IngestError, match=name) as err:
        ingest.run(params)
    assert "quarantine release" in str(err.value)
    kept = params.path("quarantine") / name.rsplit(".", 1)[0] / name
    assert kept.read_bytes() == content  # byte for byte, nothing lost
    assert not (params.path("raw") / name).exists()
    assert (kept.parent / "report.json").exists() and (kept.parent / "report.html").exists()
    from driftloop.contract.quarantine import list_quarantined

    (listed,) = list_quarantined(params.path("quarantine"))
    assert listed["files"] == [name] and name in listed["first"]
