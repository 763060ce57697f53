"""validate: run the data contract (a Great Expectations suite) on each batch of the window.

A batch that fails an `error`-severity expectation (or cannot be read) is moved out of the raw
layer into `data/quarantine/<batch>/` with a JSON and an offline HTML report beside it, and the
stage exits 1 (a failed task under Prefect), so nothing downstream runs. `warn` failures are
reported and the run goes on. A leakage guard flags features that alone predict the target.

When every batch passes, the validated window is written as a folder with one Parquet file per
batch (`io.window_file`), swapped in whole. A parquet batch already in the window's form (no
dictionary-encoded text, no zone-aware times) is copied byte for byte, so a batch that stays
in the window keeps the same file, and DVC stores and pushes only the new ones; the others
(CSV, zone-aware times) are written from Arrow. The split reads the folder (`io.read_window`).

With `validate.cache` on, a batch that already passed this contract (same bytes, suite, knobs
and library versions; driftloop/contract/cache.py) is not checked again: its kept verdict is
reported as a fresh check would report it, and the window-level checks always run. The outputs
are the same either way; reports/validate/cache.json says how many batches were known.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from driftloop.config import LeakageParams, Params, load_params
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
    parquet_layout,
    read_arrow,
    read_table,
    replace_dir,
    window_file,
    write_arrow,
    write_json,
    write_text,
)
from driftloop.learn.devices import usable_cpus
from driftloop.lock import leave, stage_run

# what run() imports when it needs it: a flow's stage server imports these ahead
# (driftloop/dvcserve.py), so the stage starts warm
LAZY_IMPORTS = ("great_expectations", "great_expectations.validator.v1_validator")
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


def plain_text(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns decoded again."""
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    return table


def output_table(data: BatchData, suite: dict) -> pa.Table:
    """A batch as it goes into the validated window: text columns plain again, a CSV time
    column parsed, zone-aware times as UTC-naive (as the contract checked them, so aware and
    naive batches join), no pandas index metadata (the batches are concatenated)."""
    if isinstance(data, pd.DataFrame):
        table = pa.Table.from_pandas(prepare_frame(data, suite, categories=False),
                                     preserve_index=False)
    else:
        table = plain_text(data)
        for i, f in enumerate(table.schema):
            if pa.types.is_timestamp(f.type) and f.type.tz is not None:
                # Arrow keeps aware times as UTC instants: dropping the zone leaves UTC wall time
                table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp(f.type.unit)))
    return table.replace_schema_metadata(None)


def in_window_form(schema: pa.Schema) -> bool:
    """Whether a parquet file with this schema already holds a batch as the window stores it
    (no dictionary-encoded text, no zone-aware times), so it can go in byte for byte."""
    return not any(pa.types.is_dictionary(f.type)
                   or (pa.types.is_timestamp(f.type) and f.type.tz is not None) for f in schema)


def leakage_draw(rows: int, sample_rows: int, seed: int) -> np.ndarray:
    """The rows of a batch the window checks may sample, in the order they take them (pure): a
    fixed permutation of its rows, cut at `sample_rows`."""
    return np.random.RandomState(seed).permutation(rows)[:min(rows, sample_rows)]


def leakage_shares(rows: list[int], sample_rows: int) -> list[int]:
    """How many sampled rows each batch gives the window's sample (pure): shares proportional
    to its rows (largest remainders), every row when the window is no larger than the sample."""
    total = sum(rows)
    if total <= sample_rows:
        return list(rows)
    exact = [sample_rows * n / total for n in rows]
    shares = [int(e) for e in exact]
    by_remainder = sorted(range(len(rows)), key=lambda i: (shares[i] - exact[i], i))
    for i in by_remainder[:sample_rows - sum(shares)]:
        shares[i] += 1
    return shares


def kept_rows(share: int, rows: int, sample_rows: int) -> int:
    """How many drawn rows of a batch the cache keeps (pure): twice its share of today's
    sample, so a window that changes a little still finds enough (a batch that needs more is
    read and drawn again)."""
    return min(rows, sample_rows, max(2 * share, 1024))


@dataclass
class Part:
    """One batch as it goes into the validated window (a folder with one Parquet file per
    batch). A parquet batch already in the window's form is copied byte for byte from
    `copy_from`; any other batch is written from `data`, all of it in the window's form
    (`output_table`). `read()` gives its rows for the leakage sample; `kept` is the start of
    its draw (`leakage_draw`) when the cache has it."""
    name: str
    rows: int
    schema: pa.Schema  # as in the window: no metadata
    data: pa.Table | None
    copy_from: Path | None
    read: Callable[[], pa.Table]
    kept: pa.Table | None = None


def drawn(part: Part, count: int, lk: LeakageParams, columns: list[str] | None = None
          ) -> pa.Table:
    """The first `count` rows of a batch's draw (some `columns`, or all)."""
    def pick(table: pa.Table) -> pa.Table:
        return table if columns is None else table.select([c for c in columns
                                                           if c in table.column_names])

    if part.kept is not None and part.kept.num_rows >= count:
        return pick(part.kept.slice(0, count))
    return pick(part.read()).take(leakage_draw(part.rows, lk.sample_rows, lk.seed)[:count])


def fresh_part(path: Path, data: BatchData, suite: dict) -> Part:
    """A batch read for GE, as it goes into the window (a parquet file in the window's form
    is copied as it is)."""
    if path.suffix == ".parquet" and isinstance(data, pa.Table):
        schema = parquet_layout(path)[0]
        if in_window_form(schema):
            return Part(path.name, data.num_rows, schema.remove_metadata(), None, path,
                        lambda: data)
    table = output_table(data, suite)
    return Part(path.name, table.num_rows, table.schema, table, None, lambda: table)


def known_part(path: Path, suite: dict, categorical: set[str]) -> Part:
    """A batch whose verdict is known: of a parquet file in the window's form only the footer
    is read now (the file is copied as it is); any other batch is read whole, to be written."""
    if path.suffix == ".parquet":
        schema, rows = parquet_layout(path)
        if in_window_form(schema):
            return Part(path.name, rows, schema.remove_metadata(), None, path,
                        lambda: read_arrow(path, categorical))  # as GE reads it
    table = output_table(read_batch(path, set()), suite)  # not for GE: plain text
    return Part(path.name, table.num_rows, table.schema, table, None, lambda: table)


def window_layout_failures(parts: list[Part]) -> list[Failure]:
    """Failures of the window as a whole before any row is read: two batches that would share
    a window file, or column types that cannot be reconciled (numeric widths and null columns
    are promoted, as `io.read_window` does)."""
    names = [window_file(p.name) for p in parts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        batches = [p.name for p in parts if window_file(p.name) in twice]
        return [Failure(WINDOW, "window_file_names_unique", None, "error", None, None,
                        detail=f"batches {batches} would share the window file(s) {twice}; "
                               "rename one of them in the raw layer and run again")]
    try:
        pa.unify_schemas([p.schema for p in parts], promote_options="permissive")
        return []
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        differ = [c for c in dict.fromkeys(c for p in parts for c in p.schema.names)
                  if not _joinable([p.schema.field(c) for p in parts if c in p.schema.names])]
        return [Failure(
            WINDOW, "window_column_types_agree", ", ".join(differ) or None, "error", None, None,
            detail=f"the batches pass one by one but their column types differ ({exc}); "
                   "re-export the odd batch with the same types as the others")]


def _joinable(fields: list[pa.Field]) -> bool:
    try:
        pa.unify_schemas([pa.schema([f]) for f in fields], promote_options="permissive")
        return True
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False


def leakage_frame(parts: list[Part], columns: list[str], lk: LeakageParams) -> pd.DataFrame:
    """The window's leakage sample: from each batch, in batch order, the first rows of its draw,
    as many as its share (`leakage_shares`); in Arrow until the end."""
    names = [c for c in dict.fromkeys(columns) if any(c in p.schema.names for p in parts)]
    shares = leakage_shares([p.rows for p in parts], lk.sample_rows)
    pieces = [plain_text(drawn(p, share, lk, names))
              for p, share in zip(parts, shares, strict=True)]
    return pa.concat_tables(pieces, promote_options="permissive").select(names).to_pandas()


def fill_window(parts: list[Part]) -> Callable[[Path], None]:
    """What writes the window folder: a file per batch, copied or written."""
    def fill(folder: Path) -> None:
        for part in parts:
            if part.copy_from is not None:
                shutil.copyfile(part.copy_from, folder / window_file(part.name))
            else:
                write_arrow(folder / window_file(part.name), part.data)
    return fill


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


def read_batches(paths: list[Path], read: Callable[[Path], T]
                 ) -> tuple[dict[str, T], dict[str, Failure]]:
    """What `read` makes of each readable batch, and a failure for each unreadable one."""
    data: dict[str, T] = {}
    failed: dict[str, Failure] = {}
    for path in paths:
        try:
            data[path.name] = read(path)
        except DataFileError as exc:
            failed[path.name] = unreadable(path.name, exc)
    return data, failed


class _Discarded(Exception):
    pass


class PendingWrite:
    """A folder filled (under a temp name) by a background thread while this one goes on
    (copies and Arrow writes run without the GIL); `finish(True)` swaps it in at `path`,
    `finish(False)` drops it. Start it after any fork, and always finish it."""

    def __init__(self, path: Path, fill: Callable[[Path], None]):
        self._answer: Future[bool] = Future()
        self._pool = ThreadPoolExecutor(1)
        self._writing = self._pool.submit(replace_dir, path, self._fill(fill))

    def _fill(self, fill: Callable[[Path], None]) -> Callable[[Path], None]:
        def run(folder: Path) -> None:
            fill(folder)
            if not self._answer.result():
                raise _Discarded
        return run

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


def _keep(cache: VerdictCache, write: Callable[[], None]) -> None:
    try:
        write()
    except OSError as exc:  # a speed-up only: the run goes on without it
        log.warning("%s: cannot write the validate cache (%s); the batch will be checked (or its "
                    "sample drawn) again next run", cache.folder, exc)


def _put(cache: VerdictCache, key: str, name: str, verdict: Verdict, part: Part, rows: int,
         lk: LeakageParams) -> None:
    """A passed batch's leakage sample (the first `rows` of its draw), then its verdict (a
    verdict found without its sample only costs a read)."""
    cache.put_sample(key, drawn(part, rows, lk), lk.seed)
    cache.put(key, name, verdict)


def _kept_sample(cache: VerdictCache, key: str, part: Part, share: int, lk: LeakageParams
                 ) -> pa.Table:
    """A known batch's kept sample, or, when the cache has none with `share` rows, one drawn
    from the batch now and kept. Raises DataFileError."""
    kept = cache.sample(key, lk.seed, share)
    if kept is None:
        kept = drawn(part, kept_rows(share, part.rows, lk.sample_rows), lk)
        _keep(cache, partial(cache.put_sample, key, kept, lk.seed))
    return kept


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


def window_failures(params: Params, parts: list[Part]) -> list[Failure]:
    """The checks of the whole window (run on every run, whatever the cache knows)."""
    vp, data = params.validate_, params.data
    sample = leakage_frame(parts, [data.target, *data.features], vp.leakage)
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
    todo, unread = read_batches([p for p in batches if p.name not in verdicts],
                                lambda path: read_batch(path, categorical))
    workers = plan_workers(vp.workers, len(todo), sum(map(_rows, todo.values())), usable_cpus(),
                           parallel_min_rows)
    where = {p.name: p for p in batches}
    lk = vp.leakage
    fresh = {name: fresh_part(where[name], d, suite) for name, d in todo.items()}
    started: list[PendingWrite] = []
    saver = ThreadPoolExecutor(1)  # writes to the cache: started after any fork

    def meanwhile() -> tuple[dict[str, Part], dict[str, Failure], dict[str, int],
                             list[Failure] | None]:
        """While GE checks: read what the window needs of the known batches (footers and
        kept samples), fill the window folder and run the window checks as if every batch
        passed (both are kept only when all did, so then they are the right ones)."""
        old, failed = read_batches([p for p in batches if p.name in verdicts],
                                   lambda path: known_part(path, suite, categorical))
        parts = {p.name: old[p.name] if p.name in old else fresh[p.name]
                 for p in batches if p.name in old or p.name in fresh}
        shares = dict(zip(parts, leakage_shares([p.rows for p in parts.values()],
                                                lk.sample_rows), strict=True))
        for name, part in old.items():
            if part.copy_from is not None:  # only its footer read so far
                try:
                    part.kept = _kept_sample(cache, keys[name], part, shares[name], lk)
                except DataFileError as exc:
                    failed[name] = unreadable(name, exc)
                    del parts[name]
        whole = list(parts.values())
        if not whole or window_layout_failures(whole) or unread or failed:
            return parts, failed, shares, None
        started.append(PendingWrite(params.path("validated"), fill_window(whole)))
        return parts, failed, shares, window_failures(params, whole)

    try:
        checked, (parts, unread_known, shares, if_all_pass) = check_batches(
            Validator(suite, parameters) if todo else None, list(todo.items()), workers, meanwhile)
        for name, verdict in zip(todo, checked, strict=True):
            verdicts[name] = verdict.failures
            if cache and name in keys and not any(is_blocking(f, vp.fail_on)
                                                  for f in verdict.failures):
                saver.submit(_keep, cache, partial(
                    _put, cache, keys[name], name, verdict, fresh[name],
                    kept_rows(shares[name], fresh[name].rows, lk.sample_rows), lk))
        unread |= unread_known
        rows = {name: part.rows for name, part in parts.items()}  # in batch order
        cached, checked_now = len(rows) - len(todo), len(todo)
        todo.clear()
        fresh.clear()
        failures = [unread[p.name] for p in batches if p.name in unread]
        failures += [f for name in rows for f in verdicts[name]]  # in batch order, cached or not
        bad = sorted({f.batch for f in failures if is_blocking(f, vp.fail_on)})
        window = [part for name, part in parts.items() if name not in bad]
        parts.clear()
        mismatch = window_layout_failures(window) if window else []
        failures += mismatch
        if window and not mismatch:
            failures += (if_all_pass if if_all_pass is not None and len(window) == len(rows)
                         else window_failures(params, window))
        else:
            window = []
        blocking = [f for f in failures if is_blocking(f, vp.fail_on)]
        for pending in started:
            pending.finish(keep=not blocking)
        if window and not blocking and not started:
            replace_dir(params.path("validated"), fill_window(window))
    finally:
        for pending in started:
            pending.finish(keep=False)  # only when something above raised: a no-op otherwise
        saver.shutdown()
    quarantined = _quarantine(params, bad, failures, rows, stamp)
    # the same with the cache or without: "workers" is what a check of the whole window uses
    planned = plan_workers(vp.workers, len(rows), sum(rows.values()), usable_cpus(), parallel_min_rows)
    summary = {
        "batches": len(batches), "rows": sum(part.rows for part in window),
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
    if not window:
        raise ContractError([Failure(WINDOW, "window_has_batches", None, "error", None, None,
                                     detail=f"no batch files in {params.paths.window}; run ingest")],
                            report)
    log.info("contract passed on %d batches, %d rows (%d known, %d checked with %d worker(s))",
             summary["batches"], summary["rows"], cached, checked_now, workers)
    return summary


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Great Expectations logs some 200 lines of its own set-up at INFO ("Skipping registering
    # function ..."): its warnings and errors still show
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
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
