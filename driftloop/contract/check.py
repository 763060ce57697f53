"""The data contract engine: a Great Expectations suite run on one frame, its failures as
plain records (check, column, count, sample values with their row numbers), and their text.

The `validate` stage runs it over the training window; `driftloop validate` runs it on one file.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.config import Params, ValidateParams
from driftloop.contract.cache import Verdict, column_ranges
from driftloop.contract.failure import SAMPLE_VALUES, WINDOW, Failure
from driftloop.contract.suite import (
    categorical_text_columns,
    explain,
    gx_suite,
    leaky_features,
    prepare_frame,
    resolve,
    text_type_errors,
    time_parameters,
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
    return _check_prepared(validator, prepare_frame(df, validator.suite_dict), batch)


def check_batch(validator: Validator, df: pd.DataFrame, batch: str) -> Verdict:
    """`check_frame`'s failures, with what the validate cache needs to reuse them later."""
    frame = prepare_frame(df, validator.suite_dict)
    return Verdict(_check_prepared(validator, frame, batch),
                   column_ranges(frame, validator.suite_dict), validator.parameters)


def _check_prepared(validator: Validator, frame: pd.DataFrame, batch: str) -> list[Failure]:
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


@dataclass(frozen=True)
class FileResult:
    rows: int
    failures: list[Failure]
    blocking: list[Failure]


def check_file(params: Params, path: Path, suite_path: Path | None = None) -> FileResult:
    """The contract on one batch file, as the `validate` stage checks each batch: the project's
    suite (or `suite_path`, whose meta names its own target, id and time columns), the
    project's time bounds, leakage guard and `fail_on`. Touches no state."""
    from driftloop.io import read_table

    suite = load_suite(suite_path or params.path("suite"))
    df = read_table(path)
    if suite_path is None:
        target, features = params.data.target, params.data.features
    else:  # a drafted suite names its own target, id and time columns
        meta = suite.get("meta") or {}
        own = (meta.get("target"), meta.get("id"), meta.get("time"))
        target, features = own[0], [c for c in df.columns if c not in own]
    failures = check_frame(validator_for(params, suite), df, path.name)
    if target:
        failures += leakage_failures(params.validate_, df, target, features, batch=path.name)
    fail_on = params.validate_.fail_on
    return FileResult(len(df), failures, [f for f in failures if is_blocking(f, fail_on)])
