"""validate: run the data contract (a Great Expectations suite) on each batch of the window.

A batch that fails an `error`-severity expectation (or cannot be read) is moved out of the raw
layer into `data/quarantine/<batch>/` with a JSON and an offline HTML report beside it, and the
stage exits 1 (a failed task under Prefect), so nothing downstream runs. `warn` failures are
reported and the run goes on. A leakage guard flags features that alone predict the target.
"""

from __future__ import annotations

import copy
import json
import logging
import multiprocessing
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.config import Params, ValidateParams, load_params
from pipelines.contract import (
    categorical_text_columns,
    explain,
    gx_suite,
    leaky_features,
    prepare_frame,
    resolve,
    text_type_errors,
    time_parameters,
)
from pipelines.io import (
    DataFileError,
    list_batches,
    read_arrow,
    read_table,
    write_arrow,
    write_json,
    write_text,
)
from pipelines.quarantine import batch_key, quarantine

log = logging.getLogger(__name__)
SAMPLE_VALUES = 20
WINDOW = "(window)"  # the `batch` of failures that concern the whole window (leakage)


@dataclass(frozen=True)
class Failure:
    batch: str
    check: str
    column: str | None
    severity: str
    unexpected_count: int | None
    unexpected_percent: float | None
    sample_values: list[Any] = field(default_factory=list)
    detail: str = ""
    rows: list[int] = field(default_factory=list)  # 0-based row numbers of sample_values

    def line(self) -> str:
        where = f"column {self.column!r}" if self.column else "table"
        count = ("" if self.unexpected_count is None
                 else f": {self.unexpected_count} unexpected ({self.unexpected_percent or 0:.2f}%)")
        if self.rows:
            pairs = ", ".join(f"row {r}: {v!r}"
                              for r, v in zip(self.rows[:5], self.sample_values, strict=False))
            sample = f", e.g. {pairs}"
        else:
            sample = f", e.g. {self.sample_values[:5]}" if self.sample_values else ""
        detail = f" [{self.detail}]" if self.detail else ""
        return f"{self.batch}: {self.check} failed on {where}{count}{sample}{detail}"

    def as_dict(self) -> dict:
        return {**asdict(self), "line": self.line()}


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


def severity(expectation: dict) -> str:
    return (expectation.get("meta") or {}).get("severity", "error")


def load_suite(path: Path) -> dict:
    try:
        suite = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot load the expectation suite ({exc}); "
                         "fix the JSON or point paths.suite at a valid suite") from None
    for i, e in enumerate(suite.get("expectations", [])):
        sev = severity(e)
        if sev not in ("error", "warn"):
            raise ValueError(f"{path}: expectation #{i} ({e.get('type')}) has meta.severity {sev!r};"
                             " use 'error' or 'warn'")
    return suite


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return None
    if hasattr(v, "item"):
        return v.item()
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


def failures_from_result(batch: str, result: dict) -> list[Failure]:
    """Turn a GX validation result (its JSON form) into failures (pure)."""
    out = []
    for r in result["results"]:
        if r["success"]:
            continue
        cfg = r["expectation_config"]
        res = r.get("result") or {}
        exc = r.get("exception_info") or {}
        raised = exc.get("raised_exception") if isinstance(exc, dict) else False
        detail = (exc.get("exception_message") or "").splitlines()[0][:200] if raised else ""
        column = cfg["kwargs"].get("column")
        if cfg["type"] == "expect_table_columns_to_match_set":
            details = res.get("details", {}).get("mismatched", {})
            missing, extra = details.get("missing", []), details.get("unexpected", [])
            detail = f"missing columns {missing}, unexpected columns {extra}"
            column = ", ".join([*missing, *extra]) or None
        if cfg["type"] == "expect_column_to_exist":
            detail = "column missing from the file"
        samples = [_jsonable(v) for v in (res.get("partial_unexpected_list") or [])]
        if "observed_value" in res and not samples:
            detail = detail or f"observed value {_jsonable(res['observed_value'])}"
        out.append(Failure(
            batch=batch, check=cfg["type"], column=column,
            severity=severity(cfg),
            unexpected_count=res.get("unexpected_count"),
            unexpected_percent=res.get("unexpected_percent"),
            sample_values=samples[:SAMPLE_VALUES], detail=detail,
            rows=[int(i) for i in (res.get("partial_unexpected_index_list") or [])
                  if isinstance(i, int)][:SAMPLE_VALUES],
        ))
    return out


class Validator:
    """A GX ephemeral context holding one suite; failed() takes a DataFrame.

    A first pass asks GX for pass/fail only (several times faster); the failed expectations
    are then rerun with counts and sample values."""

    def __init__(self, suite: dict, parameters: dict | None = None):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.suite_dict = suite
        self.categorical = categorical_text_columns(suite)
        self.parameters = parameters or {}
        self.suite = ctx.suites.add(gx.ExpectationSuite(**gx_suite(suite)))
        self.batch_def = (ctx.data_sources.add_pandas("pandas").add_dataframe_asset("batch")
                          .add_batch_definition_whole_dataframe("whole"))

    def _run(self, df: pd.DataFrame, suite: Any, result_format: dict) -> Any:
        # the validator `Batch.validate` builds, without fetching (and fingerprinting) the batch
        # a second time: GX hashes every row of the frame on each fetch
        from great_expectations.validator.v1_validator import Validator as GxValidator

        return GxValidator(batch_definition=self.batch_def, result_format=result_format,
                           batch_parameters={"dataframe": df}).validate_expectation_suite(
            suite, expectation_parameters=self.parameters)

    def failed(self, df: pd.DataFrame) -> list[dict]:
        """Results (JSON) of the expectations that fail on `df`, with counts and samples."""
        first = self._run(df, self.suite, {"result_format": "BOOLEAN_ONLY"})
        failed = {r.expectation_config.id for r in first.results if not r.success}
        if not failed:
            return []
        originals = [e for e in self.suite.expectations if e.id in failed]
        again = self._gx.ExpectationSuite(name=f"{self.suite.name}-failed",
                                          expectations=[copy.copy(e) for e in originals])
        detail = self._run(df, again, {"result_format": "SUMMARY",
                                       "partial_unexpected_count": SAMPLE_VALUES})
        return [r.to_json_dict() for r in detail.results if not r.success]


def validator_for(params: Params, suite: dict | None = None, now: pd.Timestamp | None = None
                  ) -> Validator:
    """A Validator for the project's suite (or `suite`), event-time bounds taken at `now`."""
    vp = params.validate_
    return Validator(suite or load_suite(params.path("suite")), time_parameters(
        now or pd.Timestamp.now(tz="UTC"), max_age_days=vp.max_age_days,
        clock_skew_minutes=vp.clock_skew_minutes))


def _with_samples(f: Failure, frame: pd.DataFrame, cfg: dict, parameters: dict) -> Failure:
    values, rows = explain(frame, f.check, resolve(cfg["kwargs"], parameters), SAMPLE_VALUES)
    return Failure(**{**asdict(f), "sample_values": values, "rows": rows}) if rows else f


def check_frame(validator: Validator, df: pd.DataFrame, batch: str) -> list[Failure]:
    """Failures of one batch, each with up to SAMPLE_VALUES offending values and their rows."""
    frame = prepare_frame(df, validator.suite_dict)
    suite = validator.suite_dict["expectations"]
    out = []
    for r in validator.failed(frame):
        cfg = suite[r["expectation_config"]["meta"]["suite_index"]]  # set by gx_suite
        out += [_with_samples(f, frame, cfg, validator.parameters)
                for f in failures_from_result(batch, {"results": [r]})]
    for cfg, count, detail in text_type_errors(frame, validator.suite_dict):
        f = Failure(batch=batch, check=cfg["type"], column=cfg["kwargs"]["column"],
                    severity=severity(cfg),
                    unexpected_count=count, unexpected_percent=100 * count / max(len(frame), 1),
                    detail=detail)
        out.append(_with_samples(f, frame, cfg, validator.parameters))
    return out


def unreadable(batch: str, exc: Exception) -> Failure:
    return Failure(batch=batch, check="file_is_readable", column=None, severity="error",
                   unexpected_count=None, unexpected_percent=None, detail=str(exc))


def leakage_failures(vp: ValidateParams, df: pd.DataFrame, target: str, features: list[str],
                     batch: str = WINDOW) -> list[Failure]:
    lk = vp.leakage
    return [Failure(batch=batch, check="single_feature_leakage", column=col, severity=lk.severity,
                    unexpected_count=None, unexpected_percent=None,
                    detail=f"single-feature AUC {a:.4f} > {lk.max_auc}: {col!r} alone predicts "
                           f"{target!r}; drop it from the features if it is only known after the outcome")
            for col, a in leaky_features(df, target, features, max_auc=lk.max_auc,
                                         sample_rows=lk.sample_rows, seed=lk.seed)]


def is_blocking(f: Failure, fail_on: str) -> bool:
    return f.severity == "error" or fail_on == "warn"


def contract_reason(report: dict) -> str:
    """One line for a failed run's state message: what broke, where, and where the batch is."""
    blocking = [f for f in report.get("failures", []) if f.get("blocking")]
    if not blocking:
        return "data contract failed"
    more = f" (+{len(blocking) - 1} more)" if len(blocking) > 1 else ""
    where = f"; quarantined: {', '.join(report['quarantined'])}" if report.get("quarantined") else ""
    return f"data contract failed: {blocking[0]['line']}{more}{where}"


def _samples(f: dict) -> str:
    values = f.get("sample_values") or []
    pairs = [f"row {r}: {v!r}" for r, v in zip(f.get("rows") or [], values, strict=False)]
    return ", ".join(pairs[:5]) or ", ".join(repr(v) for v in (f.get("sample_values") or [])[:5])


def failures_markdown(report: dict) -> str:
    """Markdown table of every failure, for a Prefect artifact."""
    rows = []
    for f in report.get("failures", []):
        sev = f"**{f['severity']}**" if f.get("blocking") else f["severity"]
        count = "" if f.get("unexpected_count") is None else f["unexpected_count"]
        cells = [sev, f["batch"], f["check"], f.get("column") or "(table)", count, _samples(f),
                 f.get("detail") or ""]
        rows.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells)
                    + " |")
    moved = ", ".join(report.get("quarantined", [])) or "none"
    return ("# Data contract failed\n\n"
            f"Quarantined batches: {moved} (each folder holds the file, report.json and "
            "report.html). Fix the file there and run `driftloop quarantine release <batch>`.\n\n"
            "| severity | batch | check | column | unexpected | samples | detail |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


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
    column parsed, no pandas index metadata (the batches are concatenated)."""
    if isinstance(data, pd.DataFrame):
        table = pa.Table.from_pandas(prepare_frame(data, suite, categories=False),
                                     preserve_index=False)
    else:
        table = data
        for i, f in enumerate(table.schema):
            if pa.types.is_dictionary(f.type):
                table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
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
    try:
        run(load_params())
    except ContractError as exc:
        print(f"validate: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
