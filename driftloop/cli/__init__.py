"""`driftloop`: what is neither a Prefect nor a DVC command."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from driftloop.cli.common import ParamsOpt, params_or_exit, progress_bar

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="driftloop: train, validate, register and monitor tabular models.",
                  no_args_is_help=True, add_completion=False)


@app.command()
def simulate(
    weeks: Annotated[int | None, typer.Option(help="how many weeks (default: params)")] = None,
    first_week: Annotated[int, typer.Option(help="index of the first week")] = 0,
    drift_from: Annotated[int | None, typer.Option(help="first drifted week")] = None,
    out: Annotated[Path | None, typer.Option(help="folder (default: paths.landing)")] = None,
    labels: Annotated[bool, typer.Option(
        help="also write the label files due by the newest week (paths.labels)")] = False,
    params: ParamsOpt = None,
) -> None:
    """Write synthetic weekly batches (deterministic per seed and week) into landing; with
    --labels, also the delayed label files that have arrived by then."""
    from driftloop import simulate as sim

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = params_or_exit(params)
    n = weeks or p.simulate.weeks
    drift = drift_from if drift_from is not None else p.simulate.drift_from_week
    with progress_bar("simulate", n) as advance:
        written = sim.run(p, list(range(first_week, first_week + n)), drift, out, progress=advance)
    if labels:
        due = sim.labels_due(list(range(first_week, first_week + n)), p.simulate.label_delay_days)
        written += sim.write_labels(p, due, drift)
    for path in written:
        typer.echo(str(path))


def status_report(p) -> dict:
    """Champion, recent model versions and the last drift verdict."""
    from mlflow import MlflowClient

    from driftloop import tracking
    from driftloop.tracking import current_champion

    tracking.setup(p)
    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{p.project.name}'")
    versions = sorted(versions, key=lambda v: int(v.version), reverse=True)
    champ = current_champion(client, p.project.name)
    champion = next((v for v in versions if champ and v.version == champ.version), None)
    verdicts = sorted(p.report_dir("drift").glob("*/verdict.json"), key=lambda f: f.stat().st_mtime)
    last = None
    if verdicts:
        try:
            last = json.loads(verdicts[-1].read_text())
            last = {k: last[k] for k in ("batch", "status", "reason", "share")}
        except (ValueError, KeyError, TypeError) as exc:
            last = {"batch": verdicts[-1].parent.name, "status": "unreadable", "share": None,
                    "reason": f"{verdicts[-1]} is damaged ({type(exc).__name__}); run the drift "
                              "check on that batch again to rewrite it"}

    def row(v):
        metrics = json.loads(v.tags.get("challenger_metrics") or "{}")
        metric = p.register_.metric
        return {"version": int(v.version), "champion": v is champion,
                "trigger": v.tags.get("trigger"), "decision": v.tags.get("decision"),
                "reason": v.tags.get("reason"), "metric": metric,
                "test_metric": metrics.get(metric)}

    return {"model": p.project.name,
            "champion": row(champion) if champion else None,
            "versions": [row(v) for v in versions[:10]],
            "last_drift": last}


def status_table(report: dict) -> Table:
    """`status_report` as a table: one row per recent version, the champion in the title and
    the last drift check in the caption. Cells are plain text: a reason with [brackets] is not
    taken for rich markup."""
    from rich.table import Table
    from rich.text import Text

    c, d = report["champion"], report["last_drift"]
    metric = c["metric"] if c else next((v["metric"] for v in report["versions"]), "metric")
    title = (f"{report['model']}: champion v{c['version']} (trigger {c['trigger']})" if c
             else f"{report['model']}: champion none yet")
    caption = (f"last drift check: {d['batch']}: {d['status']} ({d['reason']})" if d
               else "last drift check: none")
    table = Table(title=Text(title), caption=Text(caption))
    for name in ("version", "champion", "decision", "trigger", f"test {metric}", "reason"):
        table.add_column(Text(name), justify="right" if name in ("version", f"test {metric}") else "left",
                         overflow="fold")
    for v in report["versions"]:
        score = "-" if v["test_metric"] is None else f"{v['test_metric']:.4f}"
        cells = (v["version"], "*" if v["champion"] else "", v["decision"] or "-",
                 v["trigger"] or "-", score, v["reason"] or "-")
        table.add_row(*(Text(str(x)) for x in cells))
    return table


@app.command()
def status(params: ParamsOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """Champion, last training runs and the last drift verdict."""
    rep = status_report(params_or_exit(params))
    if as_json:
        typer.echo(json.dumps(rep, indent=2))
        return
    from rich.console import Console

    Console().print(status_table(rep))


@app.command()
def rollback(reason: Annotated[str, typer.Option(help="why: recorded on both versions")],
             params: ParamsOpt = None) -> None:
    """Move @champion back to the version the current champion replaced."""
    from driftloop.tracking import rollback as do_rollback

    try:
        r = do_rollback(params_or_exit(params), reason)
    except (RuntimeError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{r['model']}: @champion v{r['from']} -> v{r['to']} ({r['reason']})")


@app.command()
def history(params: ParamsOpt = None,
            as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """Every move of @champion (promotion, rollback), oldest first, from the registry."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from driftloop import tracking

    p = params_or_exit(params)
    tracking.setup(p)
    try:
        moves = tracking.champion_history(MlflowClient(), p.project.name)
    except MlflowException:
        moves = []  # no model registered yet: nothing has moved
    if as_json:
        typer.echo(json.dumps(moves, indent=2))
        return
    if not moves:
        typer.echo(f"{p.project.name}: @champion has not moved yet")
    for m in moves:
        typer.echo(f"{m.get('at', '?')}  {m.get('kind')}: v{m.get('from') or '-'} -> "
                   f"v{m.get('to', '?')} ({m.get('trigger')}): {m.get('reason')}  [{m.get('evidence')}]")


# Command groups from other modules register themselves here (one line each).
from driftloop.cli import contract as contract_cmds  # noqa: E402
from driftloop.cli import monitor as monitor_cmds  # noqa: E402

monitor_cmds.register(app)
contract_cmds.register(app)


if __name__ == "__main__":
    app()
