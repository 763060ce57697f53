"""The validate stage with its cache (`validate.cache`), real Great Expectations, tiny batches:
a batch that already passed the same contract is not checked again, its outputs are the same
byte for byte as without the cache, and anything that could change a verdict (the suite, the
knobs, the file's bytes, the clock) makes the batch be checked again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from datetime import date

import pandas as pd
import pytest
import yaml

from driftloop.config import load_params
from driftloop.contract.cache import file_digest
from driftloop.simulate import simulate_week
from pipelines.validate import ContractError, run
from tests.helpers import ROOT

NOW = pd.Timestamp("2026-06-01")
BATCHES = {"batch_2026-01-05.parquet": (0, 300), "batch_2026-01-12.parquet": (1, 300),
           "batch_2026-01-19.parquet": (2, 200)}  # 200 rows: the suite warns (unusual size)


def week(n: int, rows: int = 300) -> pd.DataFrame:
    return simulate_week(n, rows=rows, seed=7, start=date(2026, 1, 5), drift=False)


def put(params, name: str, df: pd.DataFrame) -> None:
    """A batch in raw, hard-linked into the window, as ingest leaves it (replacing any)."""
    for folder in (params.path("raw"), params.path("window")):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).unlink(missing_ok=True)
    df.to_parquet(params.path("raw") / name, index=False)
    os.link(params.path("raw") / name, params.path("window") / name)


@pytest.fixture
def project(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "expectations").mkdir()
    shutil.copy(ROOT / "expectations/demo.json", tmp_path / "expectations/demo.json")
    params = load_params(tmp_path / "params.yaml")
    for name, (n, rows) in BATCHES.items():
        put(params, name, week(n, rows))
    return params


def with_knobs(params, **validate):
    raw = yaml.safe_load((params.root / "params.yaml").read_text())
    for key, value in validate.items():
        if isinstance(value, dict):
            raw["validate"][key].update(value)
        else:
            raw["validate"][key] = value
    (params.root / "params.yaml").write_text(yaml.safe_dump(raw))
    return load_params(params.root / "params.yaml")


def stage(params, now=NOW) -> tuple[dict, tuple[int, int]]:
    """(report, (cached, checked) batches), whether the contract passed or not."""
    try:
        run(params, now=now)
    except ContractError:
        pass
    folder = params.report_dir("validate")
    known = json.loads((folder / "cache.json").read_text())
    return (json.loads((folder / "report.json").read_text()),
            (known["cached_batches"], known["checked_batches"]))


def outputs(params) -> dict:
    """Digests of the stage's outputs: its reports and each file of the validated window."""
    files = [params.report_dir("validate") / n for n in ("report.json", "report.md")]
    files += sorted(params.path("validated").iterdir())
    return {f"{f.parent.name}/{f.name}": hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def window_files(params) -> dict:
    return {k: v for k, v in outputs(params).items() if k.startswith("window/")}


def test_a_second_run_checks_nothing_and_writes_the_same_outputs(project):
    report, counts = stage(project)
    assert report["passed"] and counts == (0, 3)
    warned = [f["line"] for f in report["failures"]]
    assert len(warned) == 1 and "batch_2026-01-19.parquet" in warned[0], warned  # the small batch
    cold = outputs(project)
    report, counts = stage(project)
    assert counts == (3, 0) and outputs(project) == cold  # its warning reported as before
    report, counts = stage(with_knobs(project, cache=False))
    assert counts == (0, 3) and outputs(project) == cold
    assert json.loads((project.report_dir("validate") / "cache.json").read_text())["enabled"] is False


def test_only_the_new_batch_is_checked_and_window_checks_still_run(project):
    stage(project)
    put(project, "batch_2026-01-26.parquet", week(3))
    report, counts = stage(project)
    assert report["passed"] and report["batches"] == 4 and counts == (3, 1)
    # the leakage guard looks at the whole window on every run: here every feature "leaks"
    report, counts = stage(with_knobs(project, leakage={"max_auc": 0.501}))
    assert counts == (4, 0)  # not a verdict knob: the batches stay known
    assert any(f["check"] == "single_feature_leakage" for f in report["failures"])


def test_the_window_checks_give_the_same_figures_from_kept_samples(project, caplog):
    """Each known batch gives the leakage sample its share from its kept sample; a sample that
    is damaged, missing or drawn with another seed is drawn from the batch again and kept."""
    leaky = with_knobs(project, leakage={"max_auc": 0.501})  # every feature reported, with its AUC
    report, counts = stage(leaky)
    assert counts == (0, 3)
    assert len([f for f in report["failures"] if f["check"] == "single_feature_leakage"]) > 5
    cold = outputs(leaky)
    samples = sorted(leaky.path("validate_cache").rglob("*.sample.parquet"))
    assert len(samples) == 3
    assert stage(leaky)[1] == (3, 0) and outputs(leaky) == cold
    samples[0].write_bytes(b"PAR1 damaged")
    samples[1].unlink()
    with caplog.at_level(logging.WARNING, logger="driftloop.contract.cache"):
        assert stage(leaky)[1] == (3, 0) and outputs(leaky) == cold
    assert samples[0].name in caplog.text and all(s.exists() for s in samples)  # kept anew
    assert stage(leaky)[1] == (3, 0) and outputs(leaky) == cold
    reseeded = with_knobs(leaky, leakage={"seed": 1})
    assert stage(reseeded)[1] == (3, 0)  # not a verdict knob: the samples are drawn again
    figures = outputs(reseeded)
    assert figures != cold and stage(reseeded)[1] == (3, 0) and outputs(reseeded) == figures
    assert stage(with_knobs(reseeded, cache=False))[1] == (0, 3) and outputs(reseeded) == figures


def test_a_suite_edit_revalidates_every_batch(project):
    stage(project)
    suite = json.loads(project.path("suite").read_text())
    (age,) = [e for e in suite["expectations"] if e["kwargs"].get("column") == "age"
              and e["type"] == "expect_column_values_to_be_between"]
    age["kwargs"]["max_value"] = 99
    project.path("suite").write_text(json.dumps(suite, indent=2))
    assert stage(project)[1] == (0, 3)
    assert stage(project)[1] == (3, 0)


@pytest.mark.parametrize(("knobs", "counts"), [
    ({"max_age_days": 1000}, (0, 3)),       # decides verdicts: revalidated
    ({"clock_skew_minutes": 0}, (0, 3)),
    ({"workers": 1}, (3, 0)),               # how, not what: kept verdicts hold
])
def test_a_changed_knob_revalidates_when_it_decides_verdicts(project, knobs, counts):
    stage(project)
    assert stage(with_knobs(project, **knobs))[1] == counts


def test_same_name_new_bytes_is_checked_again_and_a_failure_is_not_kept(project):
    stage(project)
    passed = window_files(project)
    assert len(passed) == 3
    name = "batch_2026-01-12.parquet"
    bad = week(1).assign(age=lambda d: d["age"].where(d.index != 8, 150.0))
    put(project, name, bad)  # same name, new bytes: breaks the age bound
    digest = file_digest(project.path("window") / name)
    report, counts = stage(project)
    assert counts == (2, 1) and not report["passed"]
    # the window written while the batch was checked is dropped: the last good one stays
    assert window_files(project) == passed
    assert [p.name for p in project.path("validated").parent.iterdir()] == ["window"]
    assert any(name in f["line"] and "'age'" in f["line"] for f in report["failures"])
    assert (project.path("quarantine") / "batch_2026-01-12" / name).exists()
    assert not list(project.path("validate_cache").rglob(f"{digest}*"))  # never kept as passed


def test_a_damaged_entry_is_ignored_logged_and_rewritten(project, caplog):
    stage(project)
    entries = sorted(project.path("validate_cache").rglob("*.json"))
    assert len(entries) == 3
    entries[0].write_text(entries[0].read_text()[:40])               # truncated
    entries[1].write_text(entries[2].read_text())                    # another batch's verdict
    with caplog.at_level(logging.WARNING, logger="driftloop.contract.cache"):
        report, counts = stage(project)
    assert report["passed"] and counts == (1, 2)
    known = json.loads((project.report_dir("validate") / "cache.json").read_text())
    assert sorted(known["ignored_entries"]) == sorted(e.name for e in entries[:2])
    assert entries[0].name in caplog.text and entries[1].name in caplog.text
    assert stage(project)[1] == (3, 0)  # checked again, kept again


def test_a_kept_pass_is_not_reused_once_its_events_are_too_old(project):
    """The suite's oldest-event bound moves with the clock: the first batch passed, but by
    `later` part of its week is older than validate.max_age_days, so it is checked again and
    fails, as it would without the cache. The other batches lie wholly inside the bounds."""
    stage(project)
    later = pd.Timestamp("2026-01-08") + pd.Timedelta(days=project.validate_.max_age_days)
    report, counts = stage(project, now=later)
    assert counts == (2, 1) and not report["passed"]
    assert report["quarantined"] == ["data/quarantine/batch_2026-01-05"]
    assert any("event_time" in f["line"] for f in report["failures"] if f["blocking"])
