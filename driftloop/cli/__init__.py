"""`driftloop`: what is neither a Prefect nor a DVC command."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from driftloop.cli.common import ParamsOpt, params_or_exit

app = typer.Typer(help="driftloop: train, validate, register and monitor tabular models.",
                  no_args_is_help=True, add_completion=False)


@app.command()
def simulate(
    weeks: Annotated[int | None, typer.Option(help="how many weeks (default: params)")] = None,
    first_week: Annotated[int, typer.Option(help="index of the first week")] = 0,
    drift_from: Annotated[int | None, typer.Option(help="first drifted week")] = None,
    out: Annotated[Path | None, typer.Option(help="folder (default: paths.landing)")] = None,
    params: ParamsOpt = None,
) -> None:
    """Write synthetic weekly batches (deterministic per seed and week) into landing."""
    from driftloop import simulate as sim

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = params_or_exit(params)
    n = weeks or p.simulate.weeks
    drift = drift_from if drift_from is not None else p.simulate.drift_from_week
    for path in sim.run(p, list(range(first_week, first_week + n)), drift, out):
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
    last = json.loads(verdicts[-1].read_text()) if verdicts else None

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
            "last_drift": ({k: last[k] for k in ("batch", "status", "reason", "share")}
                           if last else None)}


@app.command()
def status(params: ParamsOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """Champion, last training runs and the last drift verdict."""
    rep = status_report(params_or_exit(params))
    if as_json:
        typer.echo(json.dumps(rep, indent=2))
        return
    c = rep["champion"]
    typer.echo(f"model: {rep['model']}")
    typer.echo(f"champion: version {c['version']} (test {c['metric']} {c['test_metric']:.4f}, "
               f"trigger {c['trigger']})" if c else "champion: none yet")
    for v in rep["versions"]:
        typer.echo(f"  v{v['version']}: {v['decision']} [{v['trigger']}] {v['reason']}")
    d = rep["last_drift"]
    typer.echo(f"last drift check: {d['batch']}: {d['status']} ({d['reason']})" if d
               else "last drift check: none")


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


# Command groups from other modules register themselves here (one line each).
from driftloop.cli import contract as contract_cmds  # noqa: E402
from driftloop.cli import monitor as monitor_cmds  # noqa: E402

monitor_cmds.register(app)
contract_cmds.register(app)


if __name__ == "__main__":
    app()
