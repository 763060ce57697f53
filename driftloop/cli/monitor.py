"""`driftloop score` and `driftloop drift` (one batch against the champion, as the flows run
them), `driftloop backtest` and `driftloop replay` (the drift check and the retrain policy over
history, without touching the project's state).

Exit codes: 0 done, 1 the batch does not fit (missing columns, values of the wrong type) or
there is no champion yet, 2 a file that cannot be read or bad params; the message names the
file and the column, never a traceback."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from driftloop.cli.common import ParamsOpt, batch_errors, params_or_exit, progress_bar
from driftloop.config import ParamsError, load_params

BatchArg = Annotated[str | None, typer.Argument(
    help="batch file, or the name of a landed batch (default: the newest)")]


def _batch_or_exit(p, batch: str | None) -> Path:
    """The batch file named (a path, or a name in landing or raw) or the newest one; exit 2
    when there is none."""
    from driftloop.io import find_batch, newest_batch

    folders = [p.path("landing"), p.path("raw")]
    try:
        return find_batch(batch, folders) or newest_batch(*folders)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def score(batch: BatchArg = None, params: ParamsOpt = None) -> None:
    """Score a batch with the @champion model, as the score flow does: writes
    paths.predictions/<batch>.parquet and prints a summary (JSON)."""
    from driftloop.monitor import score as sc

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    p = params_or_exit(params)
    path = _batch_or_exit(p, batch)
    with batch_errors(path):
        out = sc.run(p, path)
    typer.echo(json.dumps(out, indent=2, default=str))


def drift(batch: BatchArg = None, params: ParamsOpt = None) -> None:
    """Check a batch for drift against the @champion's training rows, as the drift-check flow
    does (verdict and report under reports/drift/<batch>/, an MLflow run); the retrain policy
    is not applied. Prints the verdict (JSON)."""
    from driftloop.monitor import drift as dr

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    p = params_or_exit(params)
    path = _batch_or_exit(p, batch)
    with batch_errors(path):
        out = dr.run(p, path)
    typer.echo(json.dumps({k: out[k] for k in ("batch", "rows", "status", "reason", "share",
                                               "drifted_columns", "report_html")},
                          indent=2, default=str))


def backtest(
    reference: Annotated[Path, typer.Option(help="reference table (.parquet/.csv): what "
                                                 "the model was trained on")],
    batches: Annotated[Path, typer.Option(help="folder of batch files, replayed in name order")],
    target: Annotated[str | None, typer.Option(help="target column (left out of the features)")]
    = None,
    id_col: Annotated[str | None, typer.Option("--id", help="id column (left out)")] = None,
    time_col: Annotated[str | None, typer.Option("--time", help="event time column: the clock "
                                                                "of the replay")] = None,
    params: ParamsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help='print {"checks": [...], '
                                                         '"retrains": [...]}')] = False,
    null: Annotated[int, typer.Option("--null", help="also check N null batches resampled "
                                                     "from the reference: false retrains per "
                                                     "year")] = 0,
    onset: Annotated[int | None, typer.Option("--onset", help="also check K null batches, then "
                                                             "the batch files: detection "
                                                             "delay")] = None,
) -> None:
    """When would the policy have retrained on these batches, and why? Changes no state."""
    from driftloop.io import DataFileError, list_batches
    from driftloop.monitor import backtest as bt

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        p = load_params(params)
        n = len(list_batches(batches))
        total = n + null + (n + onset if onset is not None else 0)
        with progress_bar("backtest", total, enabled=not as_json) as advance:
            out = bt.run(p, reference, batches, target=target, id_col=id_col, time_col=time_col,
                         null_periods=null, onset=onset, progress=advance)
    except (ParamsError, DataFileError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:  # readable files that do not fit: columns, types
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    f = out["features"]
    typer.echo(f"reference {out['reference']['file']} ({out['reference']['rows']} rows); "
               f"{len(f['numerical'])} numerical + {len(f['categorical'])} categorical features "
               f"({f['source']})")
    for c in out["checks"]:
        share = "-" if c["share"] is None else f"{c['share']:.2f}"
        typer.echo(f"{c['batch']}: {c['status']} (share {share}) -> {c['action']}: {c['why']}")
    typer.echo(f"{len(out['retrains'])} retrain(s)" + "".join(
        f"\n  after {r['batch']} ({r['at'][:10]}): {r['why']}" for r in out["retrains"]))
    for line in streams_text(out):
        typer.echo(line)


def replay(
    data: Annotated[Path, typer.Argument(help="a time-stamped table (.parquet or .csv)")],
    target: Annotated[str, typer.Option(help="target column; the task follows it")],
    time_col: Annotated[str, typer.Option("--time", help="event time column")],
    id_col: Annotated[str | None, typer.Option("--id", help="id column (left out)")] = None,
    every: Annotated[str, typer.Option(help="period length: week or month")] = "month",
    initial_periods: Annotated[int, typer.Option(help="periods the first champion trains on "
                                                      "(and every retrain's window)")] = 6,
    label_delay_periods: Annotated[int, typer.Option(help="labels of a period arrive this many "
                                                          "periods later")] = 1,
    drop: Annotated[list[str] | None, typer.Option(help="columns to leave out (leaks, ids); "
                                                        "repeat the option")] = None,
    params: ParamsOpt = None,
    out: Annotated[Path | None, typer.Option(help="write replay.csv, replay.png and "
                                                  "summary.json here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='print {"periods": [...], '
                                                         '"summary": {...}} only')] = False,
    null: Annotated[int, typer.Option("--null", help="also watch N null periods resampled from "
                                                     "the first champion's reference: false "
                                                     "retrains per year")] = 0,
    onset: Annotated[int | None, typer.Option("--onset", help="also watch K null periods, then "
                                                             "the data's periods after the "
                                                             "first window until a retrain: "
                                                             "detection delay")]
    = None,
) -> None:
    """Does the retrain policy pay on this data? The policy against never retraining and
    retraining every period, with the project's training, drift check, policy and gate."""
    from driftloop.io import DataFileError, read_table
    from driftloop.monitor import replay as rp

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if every not in ("week", "month"):
        typer.echo(f"error: --every {every!r}: use week or month", err=True)
        raise typer.Exit(2)
    try:
        p = load_params(params)
        df = read_table(data)
        drops = list(drop or [])
        total = len(rp.cut_periods(df.drop(columns=[c for c in drops if c in df]), time_col, every))
        with progress_bar("replay", max(total - initial_periods, 0), enabled=not as_json) as advance:
            result = rp.run_replay(p, df, target=target, time_col=time_col, id_col=id_col,
                                   every=every, initial_periods=initial_periods,
                                   label_delay=label_delay_periods, drop=drops,
                                   null_periods=null, onset=onset, progress=advance)
        written = rp.write_outputs(result, out) if out else []
    except (ParamsError, DataFileError, ValueError) as exc:
        typer.echo(f"error: {data}: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({"periods": result["periods"], "summary": result["summary"]},
                              indent=2, default=str))
        return
    typer.echo(replay_text(result))
    for f in written:
        typer.echo(f"wrote {f}")


def replay_text(result: dict) -> str:
    """The replay's table and summary as plain text (pure)."""
    s, setup = result["summary"], result["setup"]
    m = s["metric"]
    lines = [f"task {setup['task']}, metric {m}, {setup['every']}ly periods, first champion on "
             f"{setup['initial_periods']} periods (test {m} {setup['first_test_metric']:.4f}), "
             f"labels {setup['label_delay_periods']} period(s) late",
             f"{'period':<24} {'rows':>6} {'ver':>3} {'policy':>8} {'never':>8} {'always':>8}  "
             "drift      action  gate"]
    for r in result["periods"]:
        lines.append(f"{r['period']:<24} {r['rows']:>6} {r['serving_version']:>3} "
                     f"{r[m + '_policy']:>8.4f} {r[m + '_never']:>8.4f} {r[m + '_always']:>8.4f}  "
                     f"{r['drift_status']:<10} {r['action']:<7} {r['gate']}")
    lines.append("")
    for k in ("policy", "never", "always"):
        lines.append(f"{k:>6}: mean {m} {s[k]['mean_metric']:.4f}, {s[k]['retrains']} retrain(s), "
                     f"{s[k]['promotions']} promotion(s)")
    gap = s["gap_closed"]
    lines.append("policy closes " + ("n/a (never and always tie)" if gap is None else f"{gap:.0%}")
                 + " of the never -> always gap")
    lines += streams_text(s)
    return "\n".join(lines)


def streams_text(summary: dict) -> list[str]:
    """The null stream's false alarms and the onset stream's delays, when run (pure)."""
    lines = []
    if n := summary.get("null"):
        lines.append(f"null stream ({n['periods']} {n['every']}s resampled from the reference): "
                     f"{n['false_retrains']} false retrain(s), "
                     f"{n['false_retrains_per_year']:.2f} per year; {n['false_drift']} false "
                     f"drift verdict(s), {n['false_drift_per_year']:.2f} per year")
    if o := summary.get("onset"):
        def delay(v):
            return "never" if v is None else f"{v} period(s)"
        drop = o.get("metric_drop_after_onset")
        lines.append(f"onset stream (shift at period {o['onset']} of {o['periods']}): drift "
                     f"detected after {delay(o['detection_delay'])}, retrain asked after "
                     f"{delay(o['retrain_delay'])}; before the onset "
                     f"{o['false_drift_before_onset']} false drift verdict(s), "
                     f"{o['false_retrains_before_onset']} false retrain(s); metric drop after "
                     "the onset " + ("n/a" if drop is None else f"{drop:.3f}"))
    return lines


def register(app: typer.Typer) -> None:
    app.command()(score)
    app.command()(drift)
    app.command()(backtest)
    app.command()(replay)
