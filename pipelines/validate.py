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
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Params, ValidateParams, load_params
from pipelines.contract import explain, leaky_features, prepare_frame, resolve, time_parameters
from pipelines.io import DataFileError, list_batches, read_table, write_json, write_parquet, write_text
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


def load_suite(path: Path) -> dict:
    try:
        suite = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot load the expectation suite ({exc}); "
                         "fix the JSON or point paths.suite at a valid suite") from None
    for i, e in enumerate(suite.get("expectations", [])):
        sev = (e.get("meta") or {}).get("severity", "error")
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
            severity=(cfg.get("meta") or {}).get("severity", "error"),
            unexpected_count=res.get("unexpected_count"),
            unexpected_percent=res.get("unexpected_percent"),
            sample_values=samples[:SAMPLE_VALUES], detail=detail,
            rows=[int(i) for i in (res.get("partial_unexpected_index_list") or [])
                  if isinstance(i, int)][:SAMPLE_VALUES],
        ))
    return out


class Validator:
    """A GX ephemeral context holding one suite; validate() takes a DataFrame.

    A first pass asks GX for pass/fail only (several times faster); the failed expectations
    are then rerun with counts and sample values."""

    def __init__(self, suite: dict, parameters: dict | None = None):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.suite_dict = suite
        self.parameters = parameters or {}
        self.suite = ctx.suites.add(gx.ExpectationSuite(**copy.deepcopy(suite)))
        self.batch_def = (ctx.data_sources.add_pandas("pandas").add_dataframe_asset("batch")
                          .add_batch_definition_whole_dataframe("whole"))

    def validate(self, df: pd.DataFrame) -> dict:
        batch = self.batch_def.get_batch(batch_parameters={"dataframe": df})
        first = batch.validate(self.suite, result_format={"result_format": "BOOLEAN_ONLY"},
                               expectation_parameters=self.parameters).to_json_dict()
        failed = {r["expectation_config"].get("id") for r in first["results"] if not r["success"]}
        if not failed:
            return first
        originals = [e for e in self.suite.expectations if e.id in failed]
        again = self._gx.ExpectationSuite(name=f"{self.suite.name}-failed",
                                          expectations=[copy.copy(e) for e in originals])
        for e, orig in zip(again.expectations, originals, strict=True):
            e.id = orig.id  # so each detailed result maps back to its suite entry
        detail = batch.validate(again, result_format={
            "result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_VALUES},
            expectation_parameters=self.parameters).to_json_dict()
        kept = [r for r in first["results"] if r["success"]]
        return {**first, "results": kept + detail["results"]}


def validator_for(params: Params, suite: dict | None = None, now: pd.Timestamp | None = None
                  ) -> Validator:
    """A Validator for the project's suite (or `suite`), event-time bounds taken at `now`."""
    vp = params.validate_
    return Validator(suite or load_suite(params.path("suite")), time_parameters(
        now or pd.Timestamp.now(tz="UTC"), max_age_days=vp.max_age_days,
        clock_skew_minutes=vp.clock_skew_minutes))


def check_frame(validator: Validator, df: pd.DataFrame, batch: str) -> list[Failure]:
    """Failures of one batch, each with up to SAMPLE_VALUES offending values and their rows."""
    frame, as_category = prepare_frame(df, validator.suite_dict)
    by_id = {e.id: cfg for e, cfg in zip(validator.suite.expectations,
                                         validator.suite_dict["expectations"], strict=True)}
    out = []
    for r in validator.validate(frame)["results"]:
        for f in failures_from_result(batch, {"results": [r]}):
            if f.check == "expect_column_values_to_be_in_type_list" and f.column in as_category:
                continue  # was `object`, which the type list allows
            cfg = by_id.get(r["expectation_config"].get("id"))
            if cfg is not None:
                values, rows = explain(frame, f.check, resolve(cfg["kwargs"], validator.parameters),
                                       SAMPLE_VALUES)
                if rows:
                    f = Failure(**{**asdict(f), "sample_values": values, "rows": rows})
            out.append(f)
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


def run(params: Params, now: pd.Timestamp | None = None) -> dict:
    vp = params.validate_
    report_dir = params.report_dir("validate")
    suite_path = params.path("suite")
    stamp = pd.Timestamp.now(tz="UTC").tz_localize(None)
    validator = validator_for(params, load_suite(suite_path), now or stamp)
    failures: list[Failure] = []
    frames: dict[str, pd.DataFrame] = {}
    batches = list_batches(params.path("window"))
    for path in batches:
        try:
            df = read_table(path)
        except DataFileError as exc:
            failures.append(unreadable(path.name, exc))
            continue
        failures += check_frame(validator, df, path.name)
        frames[path.name] = prepare_frame(df, validator.suite_dict, categories=False)[0]
    if frames:
        window = pd.concat(frames.values(), ignore_index=True)
        failures += leakage_failures(vp, window, params.data.target, params.data.features)
    blocking = [f for f in failures if is_blocking(f, vp.fail_on)]
    bad = sorted({f.batch for f in blocking if f.batch != WINDOW})
    quarantined = []
    for name in bad:
        folder = quarantine([params.path("raw") / name, params.path("window") / name],
                            params.path("quarantine") / batch_key(name), {
            "batch": name, "file": f"{params.paths.raw}/{name}", "suite": str(params.paths.suite),
            "rows": len(frames[name]) if name in frames else None, "quarantined_at": stamp.isoformat(),
            "release": f"driftloop quarantine release {batch_key(name)}",
            "failures": [f.as_dict() for f in failures if f.batch == name]})
        quarantined.append(str(folder.relative_to(params.root)))
        frames.pop(name, None)
    summary = {
        "batches": len(batches), "rows": int(sum(len(f) for f in frames.values())),
        "passed": not blocking, "quarantined": quarantined,
        "failures": [{**f.as_dict(), "blocking": is_blocking(f, vp.fail_on)} for f in failures],
    }
    write_json(report_dir / "report.json", summary)
    write_text(report_dir / "report.md", "\n".join(
        ["# Data contract", "", f"passed: {not blocking}", ""] + [f"- {f.line()}" for f in failures]
        + [""] + [f"quarantined: {q}" for q in quarantined]
    ) + "\n")
    for f in failures:
        (log.error if f in blocking else log.warning)("%s", f.line())
    if blocking:
        raise ContractError(blocking, report_dir / "report.json", quarantined)
    if not frames:
        raise ContractError([Failure(WINDOW, "window_has_batches", None, "error", None, None,
                                     detail=f"no batch files in {params.paths.window}; run ingest")],
                            report_dir / "report.json")
    write_parquet(params.path("validated"), pd.concat(frames.values(), ignore_index=True))
    log.info("contract passed on %d batches, %d rows", summary["batches"], summary["rows"])
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
