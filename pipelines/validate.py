"""validate: run the data contract (a Great Expectations suite) on each batch of the window.

A batch that fails an `error`-severity expectation (or cannot be read) is moved out of the raw
layer into `data/quarantine/<batch>/` with a JSON and an offline HTML report beside it, and the
stage exits 1 (a failed task under Prefect), so nothing downstream runs. `warn` failures are
reported and the run goes on. A leakage guard flags features that alone predict the target.

With `validate.cache` on, a batch that already passed this contract (same bytes, suite, knobs
and library versions; driftloop/contract/cache.py) is not checked again: its kept verdict is
reported as a fresh check would report it, and the window-level checks always run. The outputs
are the same either way; reports/validate/cache.json says how many batches were known.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from driftloop.config import Params, load_params
from driftloop.contract.cache import Verdict, VerdictCache, contract_key, reuse
from driftloop.contract.check import (
    Validator,
    check_batch,
    is_blocking,
    leakage_failures,
    load_suite,
    unreadable,
)
from driftloop.contract.failure import WINDOW, Failure
from driftloop.contract.quarantine import batch_key, quarantine
from driftloop.contract.suite import categorical_text_columns, prepare_frame, time_parameters
from driftloop.io import (
    DataFileError,
    list_batches,
    read_arrow,
    read_table,
    write_arrow,
    write_file,
    write_json,
    write_text,
)
from driftloop.lock import leave, stage_run

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


CACHE_REPORT = "cache.json"  # reports/validate/cache.json: batches known vs checked this run
PARALLEL_MIN_ROWS = 200_000  # below this, forking workers costs more than it saves
BatchData = pa.Table | pd.DataFrame
T = TypeVar("T")
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


def _check_shared(i: int) -> Verdict:
    validator, items = _SHARED
    name, data = items[i]
    return check_batch(validator, ge_frame(data), name)


def check_batches(validator: Validator | None, items: list[tuple[str, BatchData]], workers: int,
                  meanwhile: Callable[[], T]) -> tuple[list[Verdict], T]:
    """The verdict of each batch, and what `meanwhile()` returns, run at the same time: with
    workers > 1, forked processes share the batches already read (copy-on-write) and each runs
    GE on its share while this process runs `meanwhile`; otherwise GE runs here and `meanwhile`
    in a thread (Arrow reads without the GIL). The verdicts are the same either way."""
    global _SHARED
    if not items:
        return [], meanwhile()
    if workers <= 1 or not sys.platform.startswith("linux"):
        with ThreadPoolExecutor(1) as pool:  # started after any fork, never before
            other = pool.submit(meanwhile)
            verdicts = [check_batch(validator, ge_frame(d), n) for n, d in items]
            return verdicts, other.result()
    _SHARED = (validator, items)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pending = pool.map_async(_check_shared, range(len(items)), chunksize=1)
            other = meanwhile()
            return pending.get(), other
    finally:
        _SHARED = None


def read_batches(paths: list[Path], categorical: set[str],
                 convert: Callable[[BatchData], BatchData] = lambda d: d
                 ) -> tuple[dict[str, BatchData], dict[str, Failure]]:
    """Each readable batch (as `convert` makes it), and a failure for each unreadable one."""
    data: dict[str, BatchData] = {}
    failed: dict[str, Failure] = {}
    for path in paths:
        try:
            data[path.name] = convert(read_batch(path, categorical))
        except DataFileError as exc:
            failed[path.name] = unreadable(path.name, exc)
    return data, failed


class _Discarded(Exception):
    pass


class PendingWrite:
    """`table` written (atomically) to `path` by a background thread while this one goes on
    (Arrow writes without the GIL); `finish(True)` puts the file in place, `finish(False)`
    drops it. Start it after any fork, and always finish it."""

    def __init__(self, path: Path, table: pa.Table):
        self._answer: Future[bool] = Future()
        self._pool = ThreadPoolExecutor(1)
        self._writing = self._pool.submit(write_file, path, self._write(table))

    def _write(self, table: pa.Table) -> Callable[[Path], None]:
        def write(tmp: Path) -> None:
            write_arrow(tmp, table)
            if not self._answer.result():
                raise _Discarded
        return write

    def finish(self, keep: bool) -> None:
        if not self._answer.done():
            self._answer.set_result(keep)
        try:
            with suppress(_Discarded):
                self._writing.result()
        finally:
            self._pool.shutdown()


def known_verdicts(cache: VerdictCache | None, batches: list[Path], parameters: dict,
                   suite: dict) -> tuple[dict[str, str], dict[str, list[Failure]]]:
    """(cache key of each batch, failures of the batches whose verdict is kept and holds)."""
    keys: dict[str, str] = {}
    known: dict[str, list[Failure]] = {}
    for path in batches if cache else ():
        try:
            keys[path.name] = cache.key(path)
        except OSError:  # gone or unreadable: reading it below reports why
            continue
        found = reuse(cache.get(keys[path.name]), path.name, parameters, suite)
        if found is not None:
            known[path.name] = found
    return keys, known


def _keep(cache: VerdictCache, key: str, name: str, verdict: Verdict) -> None:
    try:
        cache.put(key, name, verdict)
    except OSError as exc:  # a speed-up only: the run goes on without it
        log.warning("%s: cannot write the validate cache (%s); the batch will be checked again "
                    "next run", cache.folder, exc)


def _quarantine(params: Params, bad: list[str], failures: list[Failure], rows: dict[str, int],
                stamp: pd.Timestamp) -> list[str]:
    moved = []
    for name in bad:
        folder = quarantine([params.path("raw") / name, params.path("window") / name],
                            params.path("quarantine") / batch_key(name), {
            "batch": name, "file": f"{params.paths.raw}/{name}", "suite": str(params.paths.suite),
            "rows": rows.get(name), "quarantined_at": stamp.isoformat(),
            "release": f"driftloop quarantine release {batch_key(name)}",
            "failures": [f.as_dict() for f in failures if f.batch == name]})
        moved.append(str(folder.relative_to(params.root)))
    return moved


def window_failures(params: Params, window: pa.Table) -> list[Failure]:
    """The checks of the whole window (run on every run, whatever the cache knows)."""
    vp, data = params.validate_, params.data
    sample = leakage_frame(window, [data.target, *data.features], vp.leakage.sample_rows,
                           vp.leakage.seed)
    return leakage_failures(vp, sample, data.target, data.features)


def write_reports(folder: Path, summary: dict, failures: list[Failure], cache_stats: dict) -> None:
    """report.json and report.md (DVC outputs: the same with the cache or without), and
    cache.json (not an output: what the cache knew this run)."""
    write_json(folder / "report.json", summary)
    write_text(folder / "report.md", "\n".join(
        ["# Data contract", "", f"passed: {summary['passed']}", ""]
        + [f"- {f.line()}" for f in failures] + [""]
        + [f"quarantined: {q}" for q in summary["quarantined"]]) + "\n")
    write_json(folder / CACHE_REPORT, cache_stats)


def run(params: Params, now: pd.Timestamp | None = None,
        parallel_min_rows: int = PARALLEL_MIN_ROWS) -> dict:
    vp = params.validate_
    report_dir = params.report_dir("validate")
    report = report_dir / "report.json"
    stamp = pd.Timestamp.now(tz="UTC").tz_localize(None)
    suite = load_suite(params.path("suite"))
    parameters = time_parameters(now or stamp, max_age_days=vp.max_age_days,
                                 clock_skew_minutes=vp.clock_skew_minutes)
    cache = (VerdictCache(params.path("validate_cache"), contract_key(suite, vp, [Path(__file__)]))
             if vp.cache else None)
    batches = list_batches(params.path("window"))
    keys, verdicts = known_verdicts(cache, batches, parameters, suite)
    categorical = categorical_text_columns(suite)
    todo, unread = read_batches([p for p in batches if p.name not in verdicts], categorical)
    workers = plan_workers(vp.workers, len(todo), sum(map(_rows, todo.values())), _cores(),
                           parallel_min_rows)

    fresh = {name: output_table(d, suite) for name, d in todo.items()}  # as they go into the window
    started: list[PendingWrite] = []

    def meanwhile() -> tuple[dict[str, pa.Table], dict[str, Failure]]:
        """While GE checks: read the known batches, and write the window as if every batch
        passed (it is kept only when all did, so then it is the right one)."""
        known, failed = read_batches([p for p in batches if p.name in verdicts], set(),
                                     lambda d: output_table(d, suite))  # not for GE: plain text
        tables = {p.name: known[p.name] if p.name in known else fresh[p.name]
                  for p in batches if p.name in known or p.name in fresh}
        window, mismatch = window_table(tables)
        if window is not None and not mismatch and not unread and not failed:
            started.append(PendingWrite(params.path("validated"), window))
        return tables, failed

    try:
        checked, (tables, unread_known) = check_batches(
            Validator(suite, parameters) if todo else None, list(todo.items()), workers, meanwhile)
        for name, verdict in zip(todo, checked, strict=True):
            verdicts[name] = verdict.failures
            if cache and name in keys and not any(is_blocking(f, vp.fail_on)
                                                  for f in verdict.failures):
                _keep(cache, keys[name], name, verdict)
        unread |= unread_known
        rows = {name: _rows(t) for name, t in tables.items()}  # in batch order
        cached, checked_now = len(rows) - len(todo), len(todo)
        todo.clear()
        fresh.clear()
        failures = [unread[p.name] for p in batches if p.name in unread]
        failures += [f for name in rows for f in verdicts[name]]  # in batch order, cached or not
        bad = sorted({f.batch for f in failures if is_blocking(f, vp.fail_on)})
        window, mismatch = window_table({n: t for n, t in tables.items() if n not in bad})
        tables.clear()
        failures += mismatch
        if window is not None:
            failures += window_failures(params, window)
        blocking = [f for f in failures if is_blocking(f, vp.fail_on)]
        for pending in started:
            pending.finish(keep=not blocking)
        if window is not None and not blocking and not started:
            write_arrow(params.path("validated"), window)
    finally:
        for pending in started:
            pending.finish(keep=False)  # only when something above raised: a no-op otherwise
    quarantined = _quarantine(params, bad, failures, rows, stamp)
    # the same with the cache or without: "workers" is what a check of the whole window uses
    planned = plan_workers(vp.workers, len(rows), sum(rows.values()), _cores(), parallel_min_rows)
    summary = {
        "batches": len(batches), "rows": window.num_rows if window is not None else 0,
        "passed": not blocking, "quarantined": quarantined, "workers": planned,
        "failures": [{**f.as_dict(), "blocking": is_blocking(f, vp.fail_on)} for f in failures],
    }
    write_reports(report_dir, summary, failures, {
        "enabled": vp.cache, "folder": str(params.paths.validate_cache), "cached_batches": cached,
        "checked_batches": checked_now, "workers": workers,
        "ignored_entries": [Path(p).name for p in (cache.ignored if cache else [])]})
    for f in failures:
        (log.error if f in blocking else log.warning)("%s", f.line())
    if blocking:
        raise ContractError(blocking, report, quarantined)
    if window is None:
        raise ContractError([Failure(WINDOW, "window_has_batches", None, "error", None, None,
                                     detail=f"no batch files in {params.paths.window}; run ingest")],
                            report)
    log.info("contract passed on %d batches, %d rows (%d known, %d checked with %d worker(s))",
             summary["batches"], summary["rows"], cached, checked_now, workers)
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
    leave()  # done: skip the interpreter's teardown (driftloop.lock.leave)
