"""validate: run the data contract (a Great Expectations suite) on each batch of the window.

A failed `error`-severity expectation stops the pipeline (exit 1 under DVC, a failed task
under Prefect) with a report naming the batch file, check, column, count and sample values.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Params, load_params
from pipelines.io import list_batches, read_table, write_json, write_parquet, write_text

log = logging.getLogger(__name__)
SAMPLE_VALUES = 20


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

    def line(self) -> str:
        where = f"column {self.column!r}" if self.column else "table"
        count = ("" if self.unexpected_count is None
                 else f": {self.unexpected_count} unexpected ({self.unexpected_percent:.2f}%)")
        sample = f", e.g. {self.sample_values[:5]}" if self.sample_values else ""
        detail = f" [{self.detail}]" if self.detail else ""
        return f"{self.batch}: {self.check} failed on {where}{count}{sample}{detail}"


class ContractError(RuntimeError):
    def __init__(self, failures: list[Failure], report: Path):
        self.failures = failures
        lines = "\n".join(f"  - {f.line()}" for f in failures)
        super().__init__(
            f"data contract failed ({len(failures)} check(s)); report: {report}\n{lines}\n"
            "Fix or remove the named batch file(s), or update the suite if the data changed "
            "legitimately."
        )


def load_suite(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot load the expectation suite ({exc}); "
                         "fix the JSON or point paths.suite at a valid suite") from None


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
        samples = [_jsonable(v) for v in (res.get("partial_unexpected_list") or [])]
        if "observed_value" in res and not samples:
            detail = detail or f"observed value {_jsonable(res['observed_value'])}"
        out.append(Failure(
            batch=batch, check=cfg["type"], column=column,
            severity=(cfg.get("meta") or {}).get("severity", "error"),
            unexpected_count=res.get("unexpected_count"),
            unexpected_percent=res.get("unexpected_percent"),
            sample_values=samples[:SAMPLE_VALUES], detail=detail,
        ))
    return out


class Validator:
    """A GX ephemeral context holding one suite; validate() takes a DataFrame."""

    def __init__(self, suite: dict):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.suite = ctx.suites.add(gx.ExpectationSuite(**suite))
        self.batch_def = (ctx.data_sources.add_pandas("pandas").add_dataframe_asset("batch")
                          .add_batch_definition_whole_dataframe("whole"))

    def validate(self, df: pd.DataFrame) -> dict:
        batch = self.batch_def.get_batch(batch_parameters={"dataframe": df})
        res = batch.validate(self.suite, result_format={
            "result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_VALUES})
        return res.to_json_dict()


def run(params: Params) -> dict:
    report_dir = params.report_dir("validate")
    validator = Validator(load_suite(params.path("suite")))
    failures: list[Failure] = []
    frames = []
    for path in list_batches(params.path("window")):
        df = read_table(path)
        failures += failures_from_result(path.name, validator.validate(df))
        frames.append(df)
    blocking = [f for f in failures if f.severity == "error" or params.validate_.fail_on == "warn"]
    summary = {
        "batches": len(frames), "rows": int(sum(len(f) for f in frames)),
        "passed": not blocking, "failures": [asdict(f) for f in failures],
    }
    write_json(report_dir / "report.json", summary)
    write_text(report_dir / "report.md", "\n".join(
        ["# Data contract", "", f"passed: {not blocking}", ""] + [f"- {f.line()}" for f in failures]
    ) + "\n")
    for f in failures:
        (log.error if f in blocking else log.warning)("%s", f.line())
    if blocking:
        raise ContractError(blocking, report_dir / "report.json")
    write_parquet(params.path("validated"), pd.concat(frames, ignore_index=True))
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
