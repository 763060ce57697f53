"""validate: run the data contract (a Great Expectations suite) on each batch of the window.

A batch that fails an `error`-severity expectation (or cannot be read) is moved out of the raw
layer into `data/quarantine/<batch>/` with a JSON and an offline HTML report beside it, and the
stage exits 1 (a failed task under Prefect), so nothing downstream runs. `warn` failures are
reported and the run goes on. A leakage guard flags features that alone predict the target.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from driftloop.config import Params, load_params
from driftloop.contract.check import (
    Validator,
    check_frame,
    is_blocking,
    leakage_failures,
    load_suite,
    unreadable,
    validator_for,
)
from driftloop.contract.failure import WINDOW, Failure
from driftloop.contract.quarantine import batch_key, quarantine
from driftloop.contract.suite import prepare_frame
from driftloop.io import (
    DataFileError,
    list_batches,
    read_arrow,
    read_table,
    write_arrow,
    write_json,
    write_text,
)
from driftloop.lock import stage_run

log = logging.getLogger(__name__)


class ContractError(RuntimeError):
    def __init__(self, failures: list[Failure], report: Path, quarantined: list[str] = ()):
        self.failures = failures
        lines = "\n".join(f"  - {f.line()}" for f in failures)
        moved = (f"\nquarantined (moved out of the raw layer, nothing deleted): {', '.join(quarantined)};"
                 " fix the file there and run `driftloop quarantine release <batch>`"
                 if quarantined else "")
        super().__init__(
            f"data contract failed ({len(failures)} check(s)); report: {report}\n{lines}{moved}\n"
            "Fix the named batch file(s), or update the suite if the data changed legitimately."
        )


PARALLEL_MIN_ROWS = 200_000  # below this, forking workers costs more than it saves
BatchData = pa.Table | pd.DataFrame
_SHARED: tuple[Validator, list[tuple[str, BatchData]]] | None = None  # read by forked workers


def plan_workers(requested: int, batches: int, rows: int, cores: int,
                 min_rows: int = PARALLEL_MIN_ROWS) -> int:
    """How many processes check the batches (pure): 0 means one per core, and a small
    window is always checked in this process."""
    if requested == 1 or batches < 2 or rows < min_rows:
        return 1
    return max(1, min(requested or cores, batches))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def read_batch(path: Path, categorical: set[str]) -> BatchData:
    """A batch as read: parquet as an Arrow table with the `categorical` text columns
    dictionary-encoded, CSV as a DataFrame. Raises DataFileError."""
    if path.suffix == ".parquet":
        return read_arrow(path, categorical)
    return read_table(path)


def _rows(data: BatchData) -> int:
    return data.num_rows if isinstance(data, pa.Table) else len(data)


def ge_frame(data: BatchData) -> pd.DataFrame:
    return data.to_pandas() if isinstance(data, pa.Table) else data


def output_table(data: BatchData, suite: dict) -> pa.Table:
    """A batch as it goes into the validated window: text columns plain again, a CSV time
    column parsed, zone-aware times as UTC-naive (as the contract checked them, so aware and
    naive batches join), no pandas index metadata (the batches are concatenated)."""
    if isinstance(data, pd.DataFrame):
        table = pa.Table.from_pandas(prepare_frame(data, suite, categories=False),
                                     preserve_index=False)
    else:
        table = data
        for i, f in enumerate(table.schema):
            if pa.types.is_dictionary(f.type):
                table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
            elif pa.types.is_timestamp(f.type) and f.type.tz is not None:
                # Arrow keeps aware times as UTC instants: dropping the zone leaves UTC wall time
                table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp(f.type.unit)))
    return table.replace_schema_metadata(None)


def window_table(tables: dict[str, pa.Table]) -> tuple[pa.Table | None, list[Failure]]:
    """The passing batches as one table, or a window-level failure when their column types
    cannot be reconciled (numeric widths and null columns are promoted)."""
    if not tables:
        return None, []
    try:
        return pa.concat_tables(list(tables.values()), promote_options="permissive"), []
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        differ = [c for c in dict.fromkeys(c for t in tables.values() for c in t.column_names)
                  if not _joinable([t.schema.field(c) for t in tables.values() if c in t.column_names])]
        return None, [Failure(
            WINDOW, "window_column_types_agree", ", ".join(differ) or None, "error", None, None,
            detail=f"the batches pass one by one but their column types differ ({exc}); "
                   "re-export the odd batch with the same types as the others")]


def _joinable(fields: list[pa.Field]) -> bool:
    try:
        pa.unify_schemas([pa.schema([f]) for f in fields], promote_options="permissive")
        return True
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False


def leakage_frame(table: pa.Table, columns: list[str], sample_rows: int, seed: int
                  ) -> pd.DataFrame:
    """The rows `leaky_features` samples (the same as DataFrame.sample), taken in Arrow
    before any row becomes a Python object."""
    if table.num_rows > sample_rows:
        table = table.take(np.random.RandomState(seed).choice(table.num_rows, size=sample_rows,
                                                               replace=False))
    return table.select([c for c in dict.fromkeys(columns) if c in table.column_names]).to_pandas()


def _check_shared(i: int) -> list[Failure]:
    validator, items = _SHARED
    name, data = items[i]
    return check_frame(validator, ge_frame(data), name)


def check_batches(validator: Validator, items: list[tuple[str, BatchData]], workers: int
                  ) -> list[list[Failure]]:
    """Failures of each batch. With workers > 1, forked processes share the batches already
    read (copy-on-write) and each runs GE on its share; the results are the same."""
    global _SHARED
    if workers <= 1 or not sys.platform.startswith("linux"):
        return [check_frame(validator, ge_frame(d), n) for n, d in items]
    _SHARED = (validator, items)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(_check_shared, range(len(items)), chunksize=1)
    finally:
        _SHARED = None


def run(params: Params, now: pd.Timestamp | None = None,
        parallel_min_rows: int = PARALLEL_MIN_ROWS) -> dict:
    vp = params.validate_
    report_dir = params.report_dir("validate")
    report = report_dir / "report.json"
    suite_path = params.path("suite")
    stamp = pd.Timestamp.now(tz="UTC").tz_localize(None)
    validator = validator_for(params, load_suite(suite_path), now or stamp)
    suite = validator.suite_dict
    failures: list[Failure] = []
    items: list[tuple[str, BatchData]] = []
    batches = list_batches(params.path("window"))
    for path in batches:
        try:
            items.append((path.name, read_batch(path, validator.categorical)))
        except DataFileError as exc:
            failures.append(unreadable(path.name, exc))
    rows = {name: _rows(d) for name, d in items}
    workers = plan_workers(vp.workers, len(items), sum(rows.values()), _cores(), parallel_min_rows)
    for found in check_batches(validator, items, workers):
        failures += found
    bad = sorted({f.batch for f in failures if is_blocking(f, vp.fail_on)})
    good = {name: output_table(d, suite) for name, d in items if name not in bad}
    items.clear()
    window, mismatch = window_table(good)
    failures += mismatch
    if window is not None:
        lk = vp.leakage
        sample = leakage_frame(window, [params.data.target, *params.data.features],
                               lk.sample_rows, lk.seed)
        failures += leakage_failures(vp, sample, params.data.target, params.data.features)
    blocking = [f for f in failures if is_blocking(f, vp.fail_on)]
    quarantined = []
    for name in bad:
        folder = quarantine([params.path("raw") / name, params.path("window") / name],
                            params.path("quarantine") / batch_key(name), {
            "batch": name, "file": f"{params.paths.raw}/{name}", "suite": str(params.paths.suite),
            "rows": rows.get(name), "quarantined_at": stamp.isoformat(),
            "release": f"driftloop quarantine release {batch_key(name)}",
            "failures": [f.as_dict() for f in failures if f.batch == name]})
        quarantined.append(str(folder.relative_to(params.root)))
    summary = {
        "batches": len(batches), "rows": window.num_rows if window is not None else 0,
        "passed": not blocking, "quarantined": quarantined, "workers": workers,
        "failures": [{**f.as_dict(), "blocking": is_blocking(f, vp.fail_on)} for f in failures],
    }
    write_json(report, summary)
    write_text(report_dir / "report.md", "\n".join(
        ["# Data contract", "", f"passed: {not blocking}", ""] + [f"- {f.line()}" for f in failures]
        + [""] + [f"quarantined: {q}" for q in quarantined]
    ) + "\n")
    for f in failures:
        (log.error if f in blocking else log.warning)("%s", f.line())
    if blocking:
        raise ContractError(blocking, report, quarantined)
    if window is None:
        raise ContractError([Failure(WINDOW, "window_has_batches", None, "error", None, None,
                                     detail=f"no batch files in {params.paths.window}; run ingest")],
                            report)
    write_arrow(params.path("validated"), window)
    log.info("contract passed on %d batches, %d rows (%d worker(s))", summary["batches"],
             summary["rows"], workers)
    return summary


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    try:
        with stage_run(params, "validate"):
            run(params)
    except ContractError as exc:
        print(f"validate: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
