"""`driftloop validate`, `driftloop contract init`, `driftloop quarantine list|release`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from driftloop.cli.common import ParamsOpt, params_or_exit, progress_bar

contract_app = typer.Typer(help="Draft data contracts (Great Expectations suites).",
                           no_args_is_help=True)
quarantine_app = typer.Typer(help="Batches the contract rejected.", no_args_is_help=True)


def validate(
    file: Annotated[Path, typer.Argument(help="a .parquet or .csv batch file")],
    suite: Annotated[Path | None, typer.Option(help="suite JSON (default: paths.suite)")] = None,
    params: ParamsOpt = None,
) -> None:
    """Run the contract on one file; touches no state. Exit 0 pass, 1 fail, 2 unreadable.

    The time bounds, leakage guard and `fail_on` come from the project's `validate:` params
    (the nearest params.yaml, or --params)."""
    from driftloop.contract.check import check_file
    from driftloop.io import DataFileError

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    p = params_or_exit(params)
    try:
        result = check_file(p, file, suite)
    except (ValueError, DataFileError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for f in result.failures:
        blocking = f in result.blocking
        typer.echo(f"{'ERROR' if blocking else 'warn '} {f.line()}", err=blocking)
    typer.echo(f"{file}: {result.rows} rows, {len(result.blocking)} blocking failure(s), "
               f"{len(result.failures) - len(result.blocking)} warning(s): "
               f"{'FAIL' if result.blocking else 'pass'}")
    blocking = result.blocking
    raise typer.Exit(1 if blocking else 0)


@contract_app.command("init")
def init(
    data: Annotated[Path, typer.Argument(help="reference .parquet or .csv file")],
    target: Annotated[str, typer.Option(help="target column")],
    id: Annotated[str | None, typer.Option("--id", help="unique row id column")] = None,
    time: Annotated[str | None, typer.Option(help="event time column")] = None,
    out: Annotated[Path | None, typer.Option(help="suite path (default: expectations/<file>.json)")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing suite")] = False,
) -> None:
    """Draft a suite from a reference file (types, null rates, ranges with margin, category sets,
    row counts) for a person to review."""
    from driftloop.contract.suite import draft_suite
    from driftloop.io import DataFileError, read_table, write_json

    out = out or Path("expectations") / f"{data.stem}.json"
    if out.exists() and not force:
        typer.echo(f"error: {out} exists; pass --force to overwrite it or --out another path", err=True)
        raise typer.Exit(1)
    try:
        df = read_table(data)
    except DataFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    missing = [c for c in (target, id, time) if c and c not in df.columns]
    if missing:
        typer.echo(f"error: {data}: no column(s) {missing}; columns are {list(df.columns)}", err=True)
        raise typer.Exit(2)
    with progress_bar(f"drafting {out.name}", len(df.columns)) as advance:
        suite = draft_suite(df, name=out.stem, target=target, id_col=id, time_col=time,
                            progress=advance)
    write_json(out, suite)
    typer.echo(f"wrote {out}: {len(suite['expectations'])} expectations from {len(df)} rows of "
               f"{data}; review the bounds, then `driftloop validate <file> --suite {out}`")


@quarantine_app.command("list")
def list_cmd(params: ParamsOpt = None,
             as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """Quarantined batches, with their first failed check."""
    from driftloop.contract.quarantine import list_quarantined

    rows = list_quarantined(params_or_exit(params).path("quarantine"))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no quarantined batches")
    for r in rows:
        typer.echo(f"{r['batch']}: {', '.join(r['files'])}: {r['failed_checks']} failed check(s); "
                   f"{r['first']}")


@quarantine_app.command("release")
def release_cmd(batch: Annotated[str, typer.Argument(help="batch name (folder under data/quarantine)")],
                params: ParamsOpt = None) -> None:
    """Put a fixed batch file back into landing; the next run ingests and validates it again."""
    from driftloop.contract.quarantine import QuarantineError, release

    p = params_or_exit(params)
    try:
        dst = release(p.path("quarantine"), batch, p.path("landing"))
    except QuarantineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"released {batch} -> {dst}; the next training run picks it up")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.add_typer(contract_app, name="contract")
    app.add_typer(quarantine_app, name="quarantine")
