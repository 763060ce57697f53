"""Progress of long commands (simulate, backtest, contract init) and `driftloop status` as a table."""

import json
import logging
import sys
from contextlib import contextmanager
from datetime import date
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from rich.file_proxy import FileProxy
from typer.testing import CliRunner

from driftloop.cli import app, status_table
from driftloop.cli.common import MIN_STEPS, progress_bar
from driftloop.contract.suite import DraftRules, draft_suite
from driftloop.io import write_parquet
from driftloop.monitor.backtest import replay
from driftloop.simulate import run as simulate_run
from driftloop.simulate import simulate_week
from tests.helpers import ROOT, demo_params

START = date(2026, 1, 5)
PARAMS = str(ROOT / "params.yaml")


def small_params(rows: int = 60):
    p = demo_params()
    return p.model_copy(update={"simulate": p.simulate.model_copy(update={"rows_per_week": rows})})


# --- the helper -----------------------------------------------------------------------------

@pytest.fixture
def terminal(monkeypatch):
    """stderr taken for an interactive terminal (rich's TTY_INTERACTIVE), captured by capsys."""
    monkeypatch.setenv("TTY_INTERACTIVE", "1")


def test_bar_draws_on_stderr_and_counts_every_advance(terminal, capsys):
    with progress_bar("drafting suite.json", 7) as advance:
        for _ in range(6):
            advance()
        advance(1)
    out, err = capsys.readouterr()
    assert out == ""  # stdout stays clean for piped or --json output
    assert "drafting suite.json" in err and "7/7" in err


def test_log_lines_go_above_the_bar_and_the_handler_is_restored(terminal, capsys):
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with progress_bar("simulate", MIN_STEPS) as advance:
            assert isinstance(handler.stream, FileProxy)  # prints above the bar
            logging.getLogger("driftloop.test").warning("wrote batch_x.parquet")
            advance(MIN_STEPS)
        assert handler.stream is sys.stderr  # back to the real stream once the bar is gone
    finally:
        root.removeHandler(handler)
    assert "wrote batch_x.parquet" in capsys.readouterr().err


@pytest.mark.parametrize("enabled,total,env", [
    (False, 100, "1"),            # --json asked for
    (True, MIN_STEPS - 1, "1"),   # too little work to show
    (True, 100, "0"),             # stderr not a terminal
])
def test_no_bar_yet_advance_still_callable(monkeypatch, capsys, enabled, total, env):
    monkeypatch.setenv("TTY_INTERACTIVE", env)
    with progress_bar("backtest", total, enabled=enabled) as advance:
        for _ in range(total):
            advance()
    assert capsys.readouterr() == ("", "")


def test_no_bar_when_stderr_is_not_a_tty(monkeypatch, capsys):
    monkeypatch.delenv("TTY_INTERACTIVE", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")  # colour asked for is not a terminal
    with progress_bar("backtest", 50) as advance:
        advance(50)
    assert capsys.readouterr().err == ""


# --- the library's callbacks ----------------------------------------------------------------

def test_draft_suite_advances_once_per_column_even_on_skipped_ones():
    df = simulate_week(0, rows=300, seed=7, start=START, drift=False)
    df["free_text"] = [f"note {i}" for i in range(len(df))]  # over max_categories: skipped
    calls = []
    suite = draft_suite(df, name="s", target="default", id_col="application_id",
                        time_col="event_time", rules=DraftRules(max_categories=50), progress=calls.append)
    assert calls == [1] * len(df.columns)
    assert suite == draft_suite(df, name="s", target="default", id_col="application_id",
                                time_col="event_time", rules=DraftRules(max_categories=50))


def test_simulate_run_advances_once_per_week_written(tmp_path):
    seen = []
    paths = simulate_run(small_params(), [0, 1, 2, 3], None, tmp_path,
                         progress=lambda n: seen.append((n, len(list(tmp_path.glob("*.parquet"))))))
    assert seen == [(1, 1), (1, 2), (1, 3), (1, 4)]  # called after each file is on disk
    assert [p.parent for p in paths] == [tmp_path] * 4


def tiny_batch(week: int, rows: int = 250) -> pd.DataFrame:
    """A table unlike the demo's, with two features (x, c) that backtest infers."""
    rng = np.random.default_rng(week)
    seconds = rng.integers(0, 7 * 24 * 3600, rows)
    return pd.DataFrame({"id": [f"{week}-{i}" for i in range(rows)],
                         "t": pd.Timestamp(START) + pd.to_timedelta(week * 7 * 24 * 3600 + seconds, "s"),
                         "x": rng.normal(week, 1, rows), "c": rng.choice(["a", "b", "c"], rows),
                         "y": rng.integers(0, 2, rows)})


def test_backtest_replay_advances_once_per_batch():
    p = demo_params()
    calls = []
    out = replay(tiny_batch(0), [(f"b{w}", tiny_batch(w)) for w in range(1, 4)], numerical=["x"],
                 categorical=["c"], dp=p.drift, policy=p.policy, time_col="t", progress=calls.append)
    assert calls == [1, 1, 1] and len(out["checks"]) == 3


# --- the commands hand the callback on ------------------------------------------------------

@pytest.fixture
def bars(monkeypatch):
    """Every progress bar a command opens: label, total, enabled and the steps advanced."""
    opened = []

    @contextmanager
    def fake(label, total, enabled=True):
        bar = {"label": label, "total": total, "enabled": enabled, "steps": 0}
        opened.append(bar)
        yield lambda n=1: bar.__setitem__("steps", bar["steps"] + n)

    for module in ("driftloop.cli", "driftloop.cli.monitor", "driftloop.cli.contract"):
        monkeypatch.setattr(f"{module}.progress_bar", fake)
    return opened


def test_simulate_command_advances_per_week(bars, tmp_path):
    r = CliRunner().invoke(app, ["simulate", "--weeks", "5", "--out", str(tmp_path),
                                 "--params", PARAMS])
    assert r.exit_code == 0, r.output
    assert bars == [{"label": "simulate", "total": 5, "enabled": True, "steps": 5}]
    assert len(r.stdout.split()) == 5


def test_backtest_command_advances_per_batch_and_not_under_json(bars, tmp_path):
    ref = write_parquet(tmp_path / "ref.parquet", tiny_batch(0))
    for w in range(1, 7):
        write_parquet(tmp_path / "batches" / f"batch_{w:02d}.parquet", tiny_batch(w))
    r = CliRunner().invoke(app, ["backtest", "--reference", str(ref), "--batches",
                                 str(tmp_path / "batches"), "--target", "y", "--id", "id",
                                 "--time", "t", "--params", PARAMS, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["features"]["numerical"] == ["x"] and len(out["checks"]) == 6
    assert bars == [{"label": "backtest", "total": 6, "enabled": False, "steps": 6}]


def test_contract_init_advances_per_column(bars, tmp_path):
    df = simulate_week(0, rows=200, seed=7, start=START, drift=False)
    data = write_parquet(tmp_path / "ref.parquet", df)
    r = CliRunner().invoke(app, ["contract", "init", str(data), "--target", "default",
                                 "--out", str(tmp_path / "suite.json")])
    assert r.exit_code == 0, r.output
    (bar,) = bars
    assert bar["total"] == bar["steps"] == len(df.columns)


# --- status ---------------------------------------------------------------------------------

def version(n, champion, decision, reason, metric=0.81):
    return {"version": n, "champion": champion, "trigger": "drift", "decision": decision,
            "reason": reason, "metric": "roc_auc", "test_metric": metric}


REPORT = {"model": "credit-default",
          "champion": version(3, True, "promoted", "beats v2 by 0.02"),
          "versions": [version(4, False, "rejected", "worse on [slice] region_J", None),
                       version(3, True, "promoted", "beats v2 by 0.02")],
          "last_drift": {"batch": "batch_2026-03-09", "status": "drift", "reason": "7 of 25 columns",
                         "share": 0.28}}


def render(table) -> str:
    console = Console(file=StringIO(), width=160, color_system=None)
    console.print(table)
    return console.file.getvalue()


def test_status_table_shows_versions_champion_and_last_drift():
    text = render(status_table(REPORT))
    for header in ("version", "champion", "decision", "trigger", "test roc_auc", "reason"):
        assert header in text
    assert "credit-default: champion v3" in text
    assert "worse on [slice] region_J" in text  # brackets are text, not rich markup
    assert "0.8100" in text and "rejected" in text
    assert "last drift check: batch_2026-03-09: drift (7 of 25 columns)" in text


def test_status_table_without_any_model_yet():
    text = render(status_table({"model": "m", "champion": None, "versions": [], "last_drift": None}))
    assert "champion none yet" in text and "last drift check: none" in text


def test_status_command_json_unchanged_and_table_otherwise(monkeypatch):
    monkeypatch.setattr("driftloop.cli.params_or_exit", lambda path: None)
    monkeypatch.setattr("driftloop.cli.status_report", lambda p: REPORT)
    r = CliRunner().invoke(app, ["status", "--json"])
    assert r.exit_code == 0, r.output
    assert r.stdout == json.dumps(REPORT, indent=2) + "\n"
    r = CliRunner().invoke(app, ["status"])
    assert r.exit_code == 0, r.output
    assert "decision" in r.stdout and "beats v2 by 0.02" in r.stdout
