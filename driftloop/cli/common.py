"""What the `driftloop` command modules share: the --params option, loading it, and the
progress bar of long commands."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from driftloop.config import Params, ParamsError, load_params

ParamsOpt = Annotated[Path | None, typer.Option("--params", help="params.yaml (default: nearest)")]

# Fewer steps than this finish before a bar could tell anyone anything: no bar.
MIN_STEPS = 5


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


@contextmanager
def batch_errors(batch: Path) -> Iterator[None]:
    """What `score` and `drift` say when `batch` cannot be used, on stderr, without a
    traceback: exit 2 for a file that cannot be read (or no batch at all), 1 for a readable
    batch that does not fit (missing columns, values of the wrong type) or no champion yet.
    The message names the file; of a library's message only the first line is kept."""
    from driftloop.io import DataFileError
    from driftloop.monitor.batch import BatchError

    try:
        yield
    except (DataFileError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except (ValueError, RuntimeError) as exc:
        msg = str(exc) if isinstance(exc, BatchError) else \
            f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        typer.echo(f"error: {msg if str(batch) in msg else f'{batch}: {msg}'}", err=True)
        raise typer.Exit(1) from None


def _ignore(n: int = 1) -> None:
    """The `advance` of a progress bar that is not shown."""


@contextmanager
def progress_bar(label: str, total: int | None, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n=1)`, which moves a rich progress bar on stderr by n of `total` steps
    (None: unknown). The bar stays off stdout, so piped or --json output stays clean; it is
    not drawn when `enabled` is false (pass `not as_json`), when stderr is not a terminal or
    when there are fewer than MIN_STEPS steps. It vanishes when done."""
    if not enabled or (total is not None and total < MIN_STEPS) or not _stderr_is_interactive():
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    console = Console(stderr=True, force_terminal=True)
    # stdout is left alone: a command's output piped away must not land on the terminal.
    with Progress(*columns, console=console, transient=True, redirect_stdout=False) as bar, \
            _logs_above_bar():
        task = bar.add_task(label, total=total)
        yield lambda n=1: bar.advance(task, n)


def _stderr_is_interactive() -> bool:
    """Whether stderr is a terminal a bar can redraw in place. rich's TTY_INTERACTIVE=0/1
    overrides the guess; FORCE_COLOR, which CI services set, does not: it asks for colour,
    not for a terminal."""
    forced = os.environ.get("TTY_INTERACTIVE")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        return sys.stderr.isatty() and os.environ.get("TERM", "").lower() not in ("dumb", "unknown")
    except ValueError:  # stderr closed
        return False


@contextmanager
def _logs_above_bar() -> Iterator[None]:
    """Point logging handlers that write to stderr at rich's stand-in for it while a bar is
    live, so log lines print above the bar instead of tearing it."""
    original = getattr(sys.stderr, "rich_proxied_file", None)
    handlers = [h for h in logging.getLogger().handlers
                if type(h) is logging.StreamHandler and original is not None and h.stream is original]
    for h in handlers:
        h.setStream(sys.stderr)
    try:
        yield
    finally:
        for h in handlers:
            h.setStream(original)
