"""drift: Evidently data drift of a batch against the champion's training reference."""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from pipelines import tracking
from pipelines.config import Params, load_params
from pipelines.io import list_batches, read_table, write_json

log = logging.getLogger(__name__)
_COLUMN_TEST = re.compile(r"^Value Drift for column (?P<col>.+)$")


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftSummary:
    share: float
    count: int
    columns: list[ColumnDrift] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    status: str  # "drift" | "no_drift" | "insufficient_data"
    reason: str


def parse_report(report: dict) -> DriftSummary:
    """Per-column drift and the drifted share from an Evidently 0.7 snapshot's dict() (pure)."""
    share, count, metrics = None, None, {}
    for m in report["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("DriftedColumnsCount"):
            share, count = float(m["value"]["share"]), int(m["value"]["count"])
        elif cfg["type"].endswith("ValueDrift"):
            metrics[cfg["column"]] = (cfg["method"], float(m["value"]), float(cfg["threshold"]))
    if share is None:
        raise ValueError("no DriftedColumnsCount metric in the report: run it with DataDriftPreset")
    failed = {}
    for t in report.get("tests", []):
        if match := _COLUMN_TEST.match(t["name"]):
            failed[match["col"]] = t["status"] == "FAIL"
    cols = [ColumnDrift(c, meth, score, thr, failed.get(c, False))
            for c, (meth, score, thr) in metrics.items()]
    return DriftSummary(share, count, sorted(cols, key=lambda c: (not c.drifted, c.column)))


def decide_drift(summary: DriftSummary | None, *, rows: int, min_rows: int,
                 drift_share: float) -> Verdict:
    """Drift when the share of drifted features reaches `drift_share`; small batches never count."""
    if rows < min_rows or summary is None:
        return Verdict("insufficient_data", f"{rows} rows is below drift.min_rows={min_rows}")
    drifted = [c.column for c in summary.columns if c.drifted]
    if summary.share >= drift_share:
        return Verdict("drift", f"{summary.count} of {len(summary.columns)} features drifted "
                                f"(share {summary.share:.2f} >= {drift_share}): {drifted}")
    return Verdict("no_drift", f"share of drifted features {summary.share:.2f} < {drift_share}"
                               + (f" (drifted: {drifted})" if drifted else ""))


def compute_drift(reference: pd.DataFrame, current: pd.DataFrame, numerical: list[str],
                  categorical: list[str], drift_share: float):
    """Run Evidently's DataDriftPreset; returns (snapshot, parsed summary)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    dd = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    cols = [*numerical, *categorical]
    snap = Report([DataDriftPreset(drift_share=drift_share)], include_tests=True).run(
        current_data=Dataset.from_pandas(current[cols], data_definition=dd),
        reference_data=Dataset.from_pandas(reference[cols], data_definition=dd))
    return snap, parse_report(snap.dict())


def champion_reference(params: Params) -> tuple[pd.DataFrame, str]:
    """The champion's training rows, from its MLflow run (and its version number)."""
    import mlflow
    from mlflow import MlflowClient

    from pipelines.register import CHAMPION, current_champion

    tracking.setup(params)
    champ = current_champion(MlflowClient(), params.project.name)
    if champ is None:
        raise RuntimeError(f"no @{CHAMPION} model for {params.project.name!r} yet: run the train "
                           "flow (prefect deployment run train/weekly) or `dvc repro` first")
    local = mlflow.artifacts.download_artifacts(run_id=champ.run_id,
                                                artifact_path="reference/reference.parquet")
    return read_table(Path(local)), champ.version


def newest_batch(params: Params) -> Path:
    """The newest batch file by name, landed or ingested."""
    files = list_batches(params.path("landing")) + list_batches(params.path("raw"))
    if not files:
        raise FileNotFoundError(f"no batch files in {params.path('landing')} or "
                                f"{params.path('raw')}: land one (e.g. `driftloop simulate`)")
    return max(files, key=lambda p: p.name)


def run(params: Params, batch: Path | None = None) -> dict:
    batch = Path(batch) if batch else newest_batch(params)
    current = read_table(batch)
    reference, version = champion_reference(params)
    d = params.data
    out = params.report_dir("drift") / batch.stem
    summary = None
    if len(current) >= params.drift.min_rows:
        snap, summary = compute_drift(reference, current, d.numerical, d.categorical,
                                      params.drift.drift_share)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".report.html.tmp"
        snap.save_html(str(tmp))
        tmp.replace(out / "report.html")
    verdict = decide_drift(summary, rows=len(current), min_rows=params.drift.min_rows,
                           drift_share=params.drift.drift_share)
    result = {
        "batch": batch.name, "rows": len(current), "reference_rows": len(reference),
        "champion_version": int(version), "status": verdict.status, "reason": verdict.reason,
        "share": summary.share if summary else None,
        "drifted_columns": [c.column for c in summary.columns if c.drifted] if summary else [],
        "columns": [asdict(c) for c in summary.columns] if summary else [],
        "report_html": str(out / "report.html") if summary else None,
    }
    write_json(out / "verdict.json", result)
    log.info("%s: %s (%s)", batch.name, verdict.status, verdict.reason)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batch", nargs="?", type=Path, help="batch file (default: the newest)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(run(load_params(), args.batch), indent=2))


if __name__ == "__main__":
    main()
