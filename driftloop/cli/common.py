"""What the `driftloop` command modules share: the --params option and loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftloop.config import Params, ParamsError, load_params

ParamsOpt = Annotated[Path | None, typer.Option("--params", help="params.yaml (default: nearest)")]


def params_or_exit(path: Path | None, required: bool = True) -> Params | None:
    """The project's params; when they cannot be loaded, None if not `required`, else the
    error on stderr and exit code 2."""
    try:
        return load_params(path)
    except ParamsError as exc:
        if not required:
            return None
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
