"""Fault: damaged state. A truncated or missing policy state file, decisions log, verdict or
`dvc.lock` gives a safe recovery that is logged, or one clear error naming the file and what
to do; never a traceback, never a second retrain. Real state files; the train flow against
a real Prefect API."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.helpers import ROOT, make_project

POLICY = {"consecutive_drift": 1, "min_drift_labels": 0, "cooldown_hours": 24}
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.fixture
def params(tmp_path):
    from driftloop.config import load_params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["policy"].update(POLICY)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    return load_params(tmp_path / "params.yaml")


def drifted(batch: str) -> dict:
    return {"batch": batch, "status": "drift", "champion_version": 1, "share": 0.6,
            "reason": "drift", "drifted_columns": ["income"], "performance": None,
            "labelled_windows": []}


def retrained_an_hour_ago(params) -> None:
    """A retrain an hour ago, kept in the state and in the decisions log, as apply leaves them."""
    from driftloop.monitor import policy

    policy.apply(params, drifted("batch_01.parquet"), now=NOW - timedelta(hours=1))


@pytest.mark.parametrize("damage", ["truncated", "missing", "empty", "not json"])
def test_a_damaged_or_lost_policy_state_is_rebuilt_from_the_log_and_keeps_the_cooldown(
        params, damage, caplog):
    from driftloop.monitor import policy

    retrained_an_hour_ago(params)
    state = params.path("policy_state")
    text = state.read_text()
    if damage == "missing":
        state.unlink()
    else:
        state.write_text({"truncated": text[:len(text) // 2], "empty": "",
                          "not json": "\x00\x01garbage"}[damage])
    with caplog.at_level(logging.WARNING):
        record = policy.apply(params, drifted("batch_02.parquet"), now=NOW)
    assert record["action"] == "cooldown", record["reason"]  # not a second retrain
    assert "rebuilt from the 1 decisions" in caplog.text and str(state) in caplog.text
    if damage != "missing":
        (aside,) = state.parent.glob("policy_state.json.damaged-*")
        assert "moved to" in caplog.text and aside.name in caplog.text
    kept = json.loads(state.read_text())  # a whole state again
    assert kept["triggered"] == ["batch_01.parquet"] and len(kept["retrains"]) == 1


def test_a_decisions_log_cut_short_stays_readable_and_the_next_decision_is_whole(params, caplog):
    from driftloop.monitor import policy

    retrained_an_hour_ago(params)
    log = params.path("decisions")
    log.write_text(log.read_text() + '{"action": "ok", "key": "batch_x", "rea')  # a crash mid-write
    params.path("policy_state").unlink()  # and the state lost: rebuilt from what is readable
    with caplog.at_level(logging.WARNING):
        record = policy.apply(params, drifted("batch_02.parquet"), now=NOW)
    assert record["action"] == "cooldown", record["reason"]
    assert f"{log}:2 is damaged" in caplog.text and "cut short" in caplog.text
    lines = log.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["key"] == "batch_02.parquet"
    assert [r["key"] for r in policy.read_decisions(log)] == ["batch_01.parquet",
                                                              "batch_02.parquet"]


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_damaged_or_missing_verdict_is_written_whole_again(params, damage):
    from driftloop.monitor import policy

    verdict = params.report_dir("drift") / "batch_03" / "verdict.json"
    verdict.parent.mkdir(parents=True)
    if damage == "truncated":
        verdict.write_text('{"batch": "batch_03.parquet", "sta')
    record = policy.apply(params, drifted("batch_03.parquet"), now=NOW)
    saved = json.loads(verdict.read_text())
    assert saved["status"] == "drift" and saved["policy"] == record


def test_a_policy_state_without_a_log_to_rebuild_from_is_an_error_naming_it(tmp_path):
    from driftloop.monitor.policy import locked_state

    path = tmp_path / "state.json"
    path.write_text('{"streak": [')
    with pytest.raises(ValueError, match="state.json: unreadable policy state.*move it aside"):
        with locked_state(path):
            pass


@pytest.mark.parametrize("text,error,note", [
    (None, None, "is missing"),
    ('schema: "2.0"\nstages:\n  ingest: {cmd: [python\n', "is damaged", None),
    ("- just\n- a list\n", "is damaged", None),
    ('schema: "2.0"\nstages:\n  ingest:\n    cmd: python -m pipe', None, "cut short"),
    ('schema: "2.0"\nstages: {}\n', None, None),
])
def test_check_dvc_lock(tmp_path, text, error, note):
    from flows.common import StageFailed
    from flows.train import check_dvc_lock

    if text is not None:
        (tmp_path / "dvc.lock").write_text(text)
    if error:
        with pytest.raises(StageFailed, match=f"dvc.lock {error}.*git checkout dvc.lock"):
            check_dvc_lock(tmp_path)
        return
    got = check_dvc_lock(tmp_path)
    assert (got is None) if note is None else (note in got)


@pytest.mark.slow
def test_the_train_flow_stops_on_a_damaged_dvc_lock_naming_it(tmp_path, prefect_api):
    from flows.train import train

    project = make_project(tmp_path / "p")
    (project / "dvc.lock").write_text('schema: "2.0"\nstages:\n  ingest: {cmd: [python\n')
    os.environ["DRIFTLOOP_PARAMS"] = str(project / "params.yaml")
    try:
        state = train(trigger="manual", return_state=True)
    finally:
        os.environ.pop("DRIFTLOOP_PARAMS", None)
    assert state.is_failed()
    assert "dvc.lock is damaged" in state.message and "git checkout dvc.lock" in state.message
    assert not (project / "data/raw").exists()  # no stage ran


def test_status_names_a_damaged_verdict_instead_of_a_traceback(params):
    from typer.testing import CliRunner

    from driftloop.cli import app

    folder = params.report_dir("drift") / "batch_2026-03-02"
    folder.mkdir(parents=True)
    (folder / "verdict.json").write_text('{"batch": "batch_2026-03-02.parquet", "sta')
    res = CliRunner().invoke(app, ["status", "--json", "--params", str(params.root / "params.yaml")])
    assert res.exit_code == 0, res.output
    last = json.loads(res.stdout)["last_drift"]
    assert last["status"] == "unreadable" and "verdict.json is damaged" in last["reason"]
