"""ingest: move landed batch files into the immutable raw layer and pick the training window."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from driftloop.config import Params, load_params
from driftloop.io import list_batches, read_table, replace_dir, write_json
from driftloop.lock import leave, stage_run

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    pass


@dataclass(frozen=True)
class BatchSpan:
    name: str
    first: pd.Timestamp
    last: pd.Timestamp


def select_window(spans: list[BatchSpan], weeks: int) -> list[str]:
    """Names of the batches with events inside the newest `weeks` weeks (pure)."""
    if not spans:
        return []
    newest = max(s.last for s in spans)
    cutoff = newest - pd.Timedelta(weeks=weeks)
    return sorted(s.name for s in spans if s.last > cutoff)


def _span(path: Path, time_col: str) -> BatchSpan:
    try:
        t = read_table(path, columns=[time_col])[time_col]
    except Exception as exc:  # a batch with no time column cannot be placed in a window
        raise IngestError(
            f"{path}: cannot read time column {time_col!r} ({exc}); fix the file or move it out"
            " of the raw layer, or set data.time in params.yaml"
        ) from None
    t = pd.to_datetime(t, errors="coerce").dropna()
    if t.empty:
        raise IngestError(f"{path}: column {time_col!r} has no parseable timestamps; fix the file")
    return BatchSpan(path.name, t.min(), t.max())


def land(landing: Path, raw: Path, time_col: str, quarantine_dir: Path) -> tuple[list[Path], list[str]]:
    """Move new files from landing into raw; an existing raw file is never overwritten.

    A file that cannot be read (truncated, not UTF-8, no time column) never enters raw: it
    goes to quarantine with a report, and its error is returned."""
    from driftloop.contract.failure import Failure
    from driftloop.contract.quarantine import batch_key, quarantine

    raw.mkdir(parents=True, exist_ok=True)
    moved, rejected = [], []
    for src in list_batches(landing):
        dst = raw / src.name
        if dst.exists():
            raise IngestError(
                f"{src}: a batch named {src.name} is already in {raw}; raw files are immutable: "
                "rename the new file (e.g. add a suffix) and land it again"
            )
        try:
            _span(src, time_col)
        except IngestError as exc:
            failure = Failure(batch=src.name, check="file_is_readable", column=time_col,
                              severity="error", unexpected_count=None, unexpected_percent=None,
                              detail=str(exc))
            folder = quarantine([src], quarantine_dir / batch_key(src.name), {
                "batch": src.name, "stage": "ingest", "passed": False,
                "failures": [failure.as_dict()]})
            rejected.append(f"{exc} (moved to {folder}; fix it, then `driftloop quarantine release "
                            f"{batch_key(src.name)}`)")
            continue
        shutil.move(src, dst)
        moved.append(dst)
    return moved, rejected


def run(params: Params) -> dict:
    raw, window_dir = params.path("raw"), params.path("window")
    moved, rejected = land(params.path("landing"), raw, params.data.time, params.path("quarantine"))
    for p in moved:
        log.info("landed %s", p.name)
    if rejected:
        raise IngestError("unreadable batch file(s) quarantined:\n  - " + "\n  - ".join(rejected))
    spans = [_span(p, params.data.time) for p in list_batches(raw)]
    chosen = select_window(spans, params.ingest.window_weeks)
    if not chosen:
        raise IngestError(
            f"{raw}: no batch files to train on; put .parquet/.csv batches into "
            f"{params.path('landing')} (e.g. `driftloop simulate`)"
        )

    def fill(tmp: Path) -> None:
        for name in chosen:  # hard links: the window costs no extra space
            try:
                os.link(raw / name, tmp / name)
            except OSError:
                shutil.copy2(raw / name, tmp / name)

    replace_dir(window_dir, fill)
    summary = {"landed": [p.name for p in moved], "window": chosen,
               "window_weeks": params.ingest.window_weeks}
    write_json(params.report_dir("ingest") / "summary.json", summary)
    log.info("window: %d batches (%s .. %s)", len(chosen), chosen[0], chosen[-1])
    return summary


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    try:
        with stage_run(params, "ingest"):
            run(params)
    except IngestError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
    leave()  # done: skip the interpreter's teardown (driftloop.lock.leave)
