"""Monitoring without a server: alerts to a local HTTP receiver, the drift check on a huge
batch, and `driftloop backtest` on synthetic and (when present) real data."""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from driftloop.config import load_params
from driftloop.monitor.alerts import alert_urls, send, should_alert
from driftloop.services import free_port
from tests.helpers import ROOT, section

REAL = ROOT.parent / "shared" / "data" / "hotel_bookings.parquet"


@pytest.fixture
def receiver():
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    server = HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"json://127.0.0.1:{port}/", got
    server.shutdown()


def test_alerts_reach_a_webhook_and_failures_are_reported_not_raised(receiver, caplog):
    url, got = receiver
    dead = f"json://127.0.0.1:{free_port()}/"
    urls = alert_urls(section("alerts", urls=[url]), env={"DRIFTLOOP_ALERT_URLS": f"{dead}, {url}"})
    assert urls == [url, dead]
    failed = send(urls, "driftloop: retrain", "drift in batch_x", timeout=2)
    assert failed == [f"json://127.0.0.1:{dead.split(':')[2].split('/')[0]}/..."]
    assert [(m["title"], m["message"]) for m in got] == [("driftloop: retrain", "drift in batch_x")]
    assert "not delivered" in caplog.text
    assert send(["no-such-scheme://x"], "t", "b", timeout=1) == ["no-such-scheme://***/..."]


@pytest.mark.parametrize("on,action,status,drop,expected", [
    (["retrain"], "retrain", "drift", None, True), (["retrain"], "wait", "drift", None, False),
    (["drift"], "wait", "drift", None, True), (["performance"], "ok", "no_drift", 0.2, True),
    (["performance"], "ok", "no_drift", 0.01, False)])
def test_should_alert(on, action, status, drop, expected):
    assert should_alert(section("alerts", on=on), action=action, drift_status=status,
                        performance_drop=drop, performance_limit=0.05) is expected


def _sim(week: int, rows: int, drift: bool) -> pd.DataFrame:
    from driftloop.simulate import simulate_week

    return simulate_week(week, rows=rows, seed=7, start=date(2026, 1, 5), drift=drift)


@pytest.mark.slow
def test_a_million_rows_from_the_reference_distribution_do_not_drift():
    from driftloop.monitor.drift import check_frames

    p = load_params(ROOT / "params.yaml")
    reference = pd.concat([_sim(w, 4000, False) for w in range(5)], ignore_index=True)
    _, r = check_frames(reference, _sim(50, 1_000_000, False), numerical=p.data.numerical,
                        categorical=p.data.categorical, dp=p.drift)
    assert r["status"] == "no_drift", r["reason"]
    assert r["rows"] == 1_000_000 and r["sampled_rows"] == p.drift.max_rows
    _, r = check_frames(reference, _sim(51, 100_000, True), numerical=p.data.numerical,
                        categorical=p.data.categorical, dp=p.drift)
    assert r["status"] == "drift"


def test_small_batches_are_insufficient_data():
    from driftloop.monitor.drift import check_frames

    p = load_params(ROOT / "params.yaml")
    _, r = check_frames(_sim(0, 2000, False), _sim(1, p.drift.min_rows - 1, True),
                        numerical=p.data.numerical, categorical=p.data.categorical, dp=p.drift)
    assert r["status"] == "insufficient_data" and r["columns"] == []


def backtest_params(folder, **policy) -> str:
    """The project's params with `policy` changes, and drift retrains that do not wait for
    labels: a backtest replays batches, it has no delayed label feed to wait for."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["policy"].update({"min_drift_labels": 0, **policy})
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder / "params.yaml"


def _backtest(*args: str) -> dict:
    from driftloop.cli import app

    out = CliRunner().invoke(app, ["backtest", *args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_backtest_names_the_batch_that_would_have_retrained(tmp_path):
    ref, batches = tmp_path / "reference.parquet", tmp_path / "batches"
    batches.mkdir()
    pd.concat([_sim(w, 500, False) for w in range(4)]).to_parquet(ref)
    for w in range(4, 12):  # 8 weeks, drift from the 5th
        _sim(w, 500, w >= 8).to_parquet(batches / f"batch_{w:02d}.parquet")
    params = backtest_params(tmp_path, consecutive_drift=2)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    out = _backtest("--reference", str(ref), "--batches", str(batches), "--target", "default",
                    "--id", "application_id", "--time", "event_time", "--params", str(params))
    checks = out["checks"]
    # the retrain makes the drifted weeks the reference: the weeks after it do not drift
    assert [c["status"] for c in checks] == ["no_drift"] * 4 + ["drift"] * 2 + ["no_drift"] * 2
    assert [c["action"] for c in checks] == ["ok"] * 4 + ["wait", "retrain", "ok", "ok"]
    assert [r["batch"] for r in out["retrains"]] == ["batch_09.parquet"]
    assert "batch_08.parquet, batch_09.parquet" in out["retrains"][0]["why"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no state written


@pytest.mark.skipif(not REAL.exists(), reason=f"real data not found at ../shared/data/{REAL.name}")
def test_backtest_hotel_bookings_month_by_month(tmp_path):
    d = pd.read_parquet(REAL).drop(columns=["reservation_status", "reservation_status_date"])
    d["arrival_date"] = pd.to_datetime(
        d["arrival_date_year"].astype(str) + "-" + d["arrival_date_month"] + "-"
        + d["arrival_date_day_of_month"].astype(str), format="%Y-%B-%d")
    d["booking_id"] = range(len(d))
    month = d["arrival_date"].dt.to_period("M").astype(str)
    (tmp_path / "batches").mkdir()
    d[month < "2016-01"].to_parquet(tmp_path / "reference.parquet")
    for m, g in d[month >= "2016-01"].groupby(month[month >= "2016-01"]):
        g.to_parquet(tmp_path / "batches" / f"hotel_{m}.parquet")
    out = _backtest("--reference", str(tmp_path / "reference.parquet"), "--batches",
                    str(tmp_path / "batches"), "--target", "is_canceled", "--id", "booking_id",
                    "--time", "arrival_date", "--params", str(backtest_params(tmp_path)))
    checks = out["checks"]
    assert len(checks) == 20 and "is_canceled" not in out["features"]["numerical"]
    assert "adr" in out["features"]["numerical"] and "country" in out["features"]["categorical"]
    drifted = [c["batch"] for c in checks if c["status"] == "drift"]
    print("\nhotel months drifting:", drifted)
    print("retrains:", [(r["batch"], r["why"]) for r in out["retrains"]])
    # a reference of July-December 2015 does not describe January: real seasonal drift
    assert checks[0]["status"] == "drift" and "adr" in checks[0]["drifted_columns"]
    assert out["retrains"] and out["retrains"][0]["batch"] == "hotel_2016-01.parquet"
    assert all(c["action"] in ("retrain", "ok", "wait", "cooldown", "capped") for c in checks)
