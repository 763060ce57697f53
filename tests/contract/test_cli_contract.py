"""`driftloop contract init` and `driftloop validate` from the command line, with real Great
Expectations: the exit codes and messages a user sees. (Moved from tests/unit: it runs GE.)"""

from __future__ import annotations

from datetime import date

from typer.testing import CliRunner

from driftloop.simulate import simulate_week
from tests.helpers import ROOT


def test_cli_contract_init_validate_and_force(tmp_path):
    from driftloop.cli import app

    df = simulate_week(0, rows=800, seed=1, start=date(2026, 1, 5), drift=False)
    df.to_parquet(tmp_path / "ref.parquet")
    fresh = simulate_week(1, rows=800, seed=1, start=date(2026, 1, 5), drift=False)
    fresh.to_parquet(tmp_path / "fresh.parquet")
    fresh.assign(age=fresh["age"] * 100).to_parquet(tmp_path / "bad.parquet")
    (tmp_path / "junk.csv").write_bytes(b"\xff\xfe\x00a,b")
    out = tmp_path / "s.json"
    project = ["--params", str(ROOT / "params.yaml")]
    cli = CliRunner()
    args = ["contract", "init", str(tmp_path / "ref.parquet"), "--target", "default", "--id",
            "application_id", "--time", "event_time", "--out", str(out)]
    assert cli.invoke(app, args).exit_code == 0 and out.exists()
    again = cli.invoke(app, args)
    assert again.exit_code == 1 and "--force" in again.output
    assert cli.invoke(app, [*args, "--force"]).exit_code == 0
    ok = cli.invoke(app, ["validate", str(tmp_path / "fresh.parquet"), "--suite", str(out), *project])
    assert ok.exit_code == 0, ok.output
    bad = cli.invoke(app, ["validate", str(tmp_path / "bad.parquet"), "--suite", str(out), *project])
    assert bad.exit_code == 1 and "bad.parquet" in bad.output and "'age'" in bad.output
    junk = cli.invoke(app, ["validate", str(tmp_path / "junk.csv"), "--suite", str(out), *project])
    assert junk.exit_code == 2 and "not UTF-8" in junk.output
