"""`driftloop backtest`: replay batch files through the drift check and the retrain policy."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from driftloop.cli.common import ParamsOpt, progress_bar
from driftloop.config import ParamsError, load_params


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
) -> None:
    """When would the policy have retrained on these batches, and why? Changes no state."""
    from driftloop.io import list_batches
    from driftloop.monitor import backtest as bt

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        p = load_params(params)
        with progress_bar("backtest", len(list_batches(batches)), enabled=not as_json) as advance:
            out = bt.run(p, reference, batches, target=target, id_col=id_col, time_col=time_col,
                         progress=advance)
    except (ParamsError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
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


def register(app: typer.Typer) -> None:
    app.command()(backtest)
