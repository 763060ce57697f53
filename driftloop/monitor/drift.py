"""drift: Evidently drift of a batch against the champion's training reference.

Per feature: the effect size by type (Wasserstein for numerical, PSI for discrete numerical,
Jensen-Shannon for categorical), the noise floor at this batch size and the missing-value
shares; prediction drift (the champion's scores on the batch vs on the reference); and, when
labels have landed, the champion's measured performance on every labelled prediction window
next to its test figure, so its decay shows window by window. Large inputs are subsampled with a
seed; batches below `drift.min_rows` get "insufficient data" and never count.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop import tracking
from driftloop.config import DriftParams, EstimateParams, Params, load_params
from driftloop.io import newest_batch, read_table, write_file, write_json
from driftloop.monitor import drift_stats, multitest
from driftloop.monitor.batch import BatchError, feature_frame

log = logging.getLogger(__name__)
_COLUMN_TEST = re.compile(r"^Value Drift for column (?P<col>.+)$")
PREDICTION = "champion_score"  # the champion's probability, checked like a feature


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool
    noise_floor: float = 0.0
    missing_reference: float = 0.0
    missing_current: float = 0.0
    why: str = ""


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


def judge_columns(summary: DriftSummary, *, floors: dict[str, float],
                  missing: dict[str, tuple[float, float]], missing_increase: float,
                  features: list[str]) -> DriftSummary:
    """Judge each feature: its effect size must reach its threshold, which is at least the
    noise floor for this batch size (`column_thresholds`, the same one Evidently's report
    used); a missing share rising by more than `missing_increase` also counts. The share is
    over `features` only (the prediction column is reported apart)."""
    cols = []
    for c in summary.columns:
        floor = floors.get(c.column, 0.0)
        m_ref, m_cur = missing.get(c.column, (0.0, 0.0))
        why = []
        if c.score >= max(c.threshold, floor):
            why.append(f"{c.method} {c.score:.3f} >= {c.threshold:.3f} (the larger of the "
                       f"threshold and the noise floor {floor:.3f} at this batch size)")
        if m_cur - m_ref > missing_increase:
            why.append(f"missing {m_ref:.1%} -> {m_cur:.1%}")
        cols.append(replace(c, drifted=bool(why), noise_floor=floor, missing_reference=m_ref,
                            missing_current=m_cur, why="; ".join(why)))
    feats = [c for c in cols if c.column in features]
    count = sum(c.drifted for c in feats)
    return DriftSummary(count / max(len(feats), 1), count,
                        sorted(cols, key=lambda c: (not c.drifted, c.column)))


def decide_drift(summary: DriftSummary | None, *, rows: int, min_rows: int,
                 drift_share: float, rule: multitest.DatasetRule | None = None) -> Verdict:
    """Drift when the share of drifted features reaches `drift_share` and, with a `rule`,
    their count reaches `rule.required` (many features tested at once: see multitest);
    small batches never count."""
    if rows < min_rows or summary is None:
        return Verdict("insufficient_data", f"{rows} rows is below drift.min_rows={min_rows}")
    feats = [c for c in summary.columns if c.column != PREDICTION]
    drifted = [c.column for c in feats if c.drifted]
    why = f" ({rule.text()})" if rule else ""
    if summary.share >= drift_share and (rule is None or summary.count >= rule.required):
        return Verdict("drift", f"{summary.count} of {len(feats)} features drifted "
                                f"(share {summary.share:.2f} >= {drift_share}){why}: {drifted}")
    return Verdict("no_drift", f"{summary.count} of {len(feats)} features drifted (share "
                               f"{summary.share:.2f}, drift_share {drift_share}){why}"
                               + (f"; drifted: {drifted}" if drifted else ""))


def verdict_share(params: Params) -> float:
    """The share of the project's features that makes dataset drift under its rule (what a
    chart of the drift share should draw its line at): `drift.drift_share`, raised by the
    rule's count (see multitest.dataset_rule)."""
    dp, n = params.drift, len(params.data.features)
    rule = multitest.dataset_rule(n, correction=dp.correction, family_alpha=dp.family_alpha,
                                  drift_share=dp.drift_share, noise_rounds=dp.noise_rounds,
                                  noise_quantile=dp.noise_quantile)
    return rule.required / max(n, 1)


def feature_methods(reference: pd.DataFrame, numerical: list[str], categorical: list[str],
                    dp: DriftParams) -> dict[str, str]:
    """Effect size per feature by type: few distinct numbers count as discrete."""
    methods = {c: dp.cat_method for c in categorical}
    for c in numerical:
        few = reference[c].nunique() <= dp.discrete_values
        methods[c] = dp.discrete_method if few else dp.num_method
    return methods


def subsample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most `n` rows, drawn with `seed` (the same input gives the same sample)."""
    return df if len(df) <= n else df.sample(n, random_state=seed)


def column_thresholds(methods: dict[str, str], floors: dict[str, float], *, threshold: float,
                      prediction_threshold: float) -> dict[str, float]:
    """Per column, the effect size that counts as drift (pure): the configured threshold, or
    the noise floor for this batch size when that is higher. Evidently is handed these, so
    its report marks the columns the verdict does, for the same reason."""
    return {c: max(prediction_threshold if c == PREDICTION else threshold, floors.get(c, 0.0))
            for c in methods}


def _evidently(reference: pd.DataFrame, current: pd.DataFrame, methods: dict[str, str],
               numerical: list[str], categorical: list[str], dp: DriftParams, extra: list,
               thresholds: dict[str, float], drift_share: float):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    num = [*numerical, *([PREDICTION] if PREDICTION in current else [])]
    dd = DataDefinition(numerical_columns=num, categorical_columns=categorical)
    cols = [*num, *categorical]
    preset = DataDriftPreset(columns=[*numerical, *categorical], drift_share=drift_share,
                             per_column_method=dict(methods),
                             per_column_threshold={c: thresholds[c] for c in methods},
                             threshold=dp.threshold)
    snap = Report([preset, *extra], include_tests=True).run(
        current_data=Dataset.from_pandas(current[cols], data_definition=dd),
        reference_data=Dataset.from_pandas(reference[cols], data_definition=dd))
    return snap


def check_frames(reference: pd.DataFrame, current: pd.DataFrame, *, numerical: list[str],
                 categorical: list[str], dp: DriftParams):
    """Drift of `current` against `reference` (a `champion_score` column in both adds
    prediction drift). Returns (Evidently snapshot or None, result dict)."""
    features = [*numerical, *categorical]
    reference = feature_frame(reference, numerical=numerical, categorical=categorical,
                              source="the reference")
    current = feature_frame(current, numerical=numerical, categorical=categorical)
    rows = len(current)
    base = {"rows": rows, "reference_rows": len(reference)}
    if rows < dp.min_rows:
        v = decide_drift(None, rows=rows, min_rows=dp.min_rows, drift_share=dp.drift_share)
        return None, {**base, "status": v.status, "reason": v.reason, "share": None,
                      "drifted_columns": [], "columns": [], "prediction_drift": None,
                      "rule": None}
    ref = subsample(reference, dp.max_rows, dp.seed)
    cur = subsample(current, dp.max_rows, dp.seed)
    methods = feature_methods(ref, numerical, categorical, dp)
    with_prediction = PREDICTION in cur and PREDICTION in ref
    methods_all = {**methods, PREDICTION: "wasserstein"} if with_prediction else methods
    rule = multitest.dataset_rule(len(features), correction=dp.correction,
                                  family_alpha=dp.family_alpha, drift_share=dp.drift_share,
                                  noise_rounds=dp.noise_rounds, noise_quantile=dp.noise_quantile)
    floors = feature_floors(ref, cur, methods_all, categorical, dp, rule)
    thresholds = column_thresholds(methods_all, floors, threshold=dp.threshold,
                                   prediction_threshold=dp.prediction_threshold)
    extra = []
    if with_prediction:
        from evidently.metrics import ValueDrift

        extra.append(ValueDrift(column=PREDICTION, method="wasserstein",
                                threshold=thresholds[PREDICTION]))
    # the report's dataset test gets the rule's count as a share, so it says what the verdict says
    snap = _evidently(ref, cur, methods, numerical, categorical, dp, extra, thresholds,
                      drift_share=rule.required / max(len(features), 1))
    missing = {c: (drift_stats.missing_share(ref[c]), drift_stats.missing_share(cur[c]))
               for c in methods_all}
    summary = judge_columns(parse_report(snap.dict()), floors=floors, missing=missing,
                            missing_increase=dp.missing_increase, features=features)
    v = decide_drift(summary, rows=rows, min_rows=dp.min_rows, drift_share=dp.drift_share,
                     rule=rule)
    pred = next((c for c in summary.columns if c.column == PREDICTION), None)
    return snap, {
        **base, "sampled_rows": len(cur), "sampled_reference_rows": len(ref),
        "status": v.status, "reason": v.reason, "share": summary.share,
        "drifted_columns": [c.column for c in summary.columns
                            if c.drifted and c.column != PREDICTION],
        "columns": [asdict(c) for c in summary.columns if c.column != PREDICTION],
        "prediction_drift": asdict(pred) if pred else None, "rule": asdict(rule),
    }


def feature_floors(ref: pd.DataFrame, cur: pd.DataFrame, methods: dict[str, str],
                   categorical: list[str], dp: DriftParams,
                   rule: multitest.DatasetRule) -> dict[str, float]:
    """Per column, the effect size chance alone may reach at this batch size. binomial: the
    `noise_quantile` of `noise_rounds` bootstrap rounds. holm / bh: for the features, the
    statistic whose corrected bootstrap p-value is `family_alpha` (rounds raised as the rule
    says); the prediction column, reported apart, keeps the plain floor."""
    # a statistic sees the batch's non-missing values only: a mostly-missing column is a small
    # sample, and its floor must be that small sample's
    present = {c: len(drift_stats._clean(cur[c])) for c in methods}
    plain = {c: drift_stats.noise_floor(m, ref[c], present[c], numerical=c not in categorical,
                                        rounds=dp.noise_rounds, quantile=dp.noise_quantile,
                                        seed=dp.seed)
             for c, m in methods.items() if rule.correction == "binomial" or c == PREDICTION}
    if rule.correction == "binomial":
        return plain
    nulls = {c: multitest.null_statistics(m, ref[c], present[c], numerical=c not in categorical,
                                          rounds=rule.rounds, seed=dp.seed)
             for c, m in methods.items() if c != PREDICTION}
    feats = {c: m for c, m in methods.items() if c != PREDICTION}
    tests = multitest.feature_tests(ref, cur, feats, categorical=categorical, nulls=nulls,
                                    quantile=dp.noise_quantile)
    return {**plain, **multitest.corrected_floors({t.column: t.pvalue for t in tests}, nulls,
                                                  alpha=rule.family_alpha,
                                                  correction=rule.correction)}


@dataclass(frozen=True)
class Champion:
    version: str
    reference: pd.DataFrame
    model: object
    test_metrics: dict
    calibration: dict | None = None   # fitted by evaluate on its test rows (binary), if logged


def load_champion(params: Params) -> Champion:
    """The @champion model, its training rows (from its MLflow run) and its test metrics."""
    import mlflow

    champ = tracking.champion(params)
    local = mlflow.artifacts.download_artifacts(run_id=champ.run_id,
                                                artifact_path="reference/reference.parquet")
    model = tracking.load_model(f"models:/{params.project.name}/{champ.version}")
    try:
        test_metrics = json.loads(champ.tags.get("challenger_metrics") or "{}") or {}
    except json.JSONDecodeError:
        test_metrics = {}
    try:
        cal = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=champ.run_id, artifact_path="evaluate/calibration.json")).read_text())
    except (OSError, ValueError, mlflow.exceptions.MlflowException) as exc:
        log.warning("champion v%s has no usable calibration (%s): no performance estimate",
                    champ.version, str(exc).splitlines()[0][:200])
        cal = None
    return Champion(champ.version, read_table(Path(local)), model, test_metrics, cal)


def estimated_performance(champ: Champion, scores: np.ndarray, *, metric: str,
                          ep: EstimateParams) -> dict | None:
    """The champion's metrics on a batch estimated from its scores alone (CBPE), with the
    interval and `drop`: its test figure minus the top of the interval (the smallest drop the
    estimate allows). None when it cannot be estimated (not binary, no calibration)."""
    from driftloop.monitor.estimate import Calibrator, estimate_performance

    cal, threshold = champ.calibration, champ.test_metrics.get("threshold")
    if not cal or cal.get("method") != "isotonic" or threshold is None or len(scores) == 0:
        return None  # no calibration learned (too few test rows, one class, not binary)
    est = estimate_performance(Calibrator.from_dict(cal), scores, threshold=float(threshold),
                               rounds=ep.rounds, seed=ep.seed, confidence=ep.confidence)
    out = est.to_dict()
    baseline, m = champ.test_metrics.get(metric), out["metrics"].get(metric)
    out.update(metric=metric, baseline=baseline,
               drop=None if baseline is None or m is None else float(baseline - m["high"]))
    return out


def _with_scores(model, df: pd.DataFrame, d, seed: int, n: int) -> pd.DataFrame:
    df = subsample(df, n, seed).copy()
    x = feature_frame(df, numerical=d.numerical, categorical=d.categorical, text=True)
    df[PREDICTION] = np.asarray(model.predict(x[d.features]), dtype="float64")
    return df


def run(params: Params, batch: Path | None = None) -> dict:
    """Check one batch against the champion; write the verdict and the HTML report, log both
    to MLflow. The retrain policy is applied by the caller (flows/drift_check.py)."""
    from driftloop.monitor import labels

    batch = Path(batch) if batch else newest_batch(params.path("landing"), params.path("raw"))
    d, dp = params.data, params.drift
    current = feature_frame(read_table(batch), numerical=d.numerical, categorical=d.categorical,
                            source=str(batch))
    champ = load_champion(params)
    if len(current) >= dp.min_rows:
        ref = _with_scores(champ.model, champ.reference, d, dp.seed, dp.max_rows)
        cur = _with_scores(champ.model, current, d, dp.seed, dp.max_rows)
    else:
        ref, cur = champ.reference, current
    try:
        snap, result = check_frames(ref, cur, numerical=d.numerical, categorical=d.categorical,
                                    dp=dp)
    except BatchError as exc:  # the champion's own reference: not the batch's fault
        raise BatchError(f"{batch}: {exc}") from None
    result["rows"], result["reference_rows"] = len(current), len(champ.reference)
    metric = params.policy.performance_metric
    windows = labels.champion_performance(params, version=champ.version, metric=metric,
                                          threshold=champ.test_metrics.get("threshold"),
                                          baseline=champ.test_metrics.get(metric))
    out = params.report_dir("drift") / batch.stem
    scores = cur[PREDICTION].to_numpy() if PREDICTION in cur else np.array([])
    result.update({"batch": batch.name, "champion_version": int(champ.version),
                   "estimated_performance": estimated_performance(
                       champ, scores, metric=metric, ep=params.estimate),
                   "performance": labels.newest_measured(windows), "labelled_windows": windows,
                   "report_html": None, "mlflow_run_id": None})
    out.mkdir(parents=True, exist_ok=True)
    if snap is not None:
        write_file(out / "report.html", lambda p: snap.save_html(str(p)))
        result["report_html"] = str(out / "report.html")
    write_json(out / "verdict.json", result)
    result["mlflow_run_id"] = _log_mlflow(out, result)
    write_json(out / "verdict.json", result)
    log.info("%s: %s (%s)", batch.name, result["status"], result["reason"])
    return result


def _log_mlflow(out: Path, result: dict) -> str:
    """A small MLflow run per check: the figures as metrics, the report and verdict as files."""
    import mlflow

    metrics = {"drift_share": result["share"], "rows": result["rows"]}
    if rule := result.get("rule"):
        metrics["drift_required"] = rule["required"]  # drifted features that make dataset drift
    if result["prediction_drift"]:
        metrics["prediction_drift"] = result["prediction_drift"]["score"]
    series = {}
    if perf := result["performance"]:
        metrics[f"labelled_{perf['metric']}"] = perf["value"]
        metrics[f"champion_test_{perf['metric']}"] = perf["champion_test"]
        # the champion's metric on each labelled window, oldest first: its decay as a chart
        series[f"realized_{perf['metric']}"] = [w["value"] for w in result["labelled_windows"]
                                                if w["value"] is not None]
    if est := result.get("estimated_performance"):
        for name, m in est["metrics"].items():
            metrics.update({f"estimated_{name}": m["estimate"], f"estimated_{name}_low": m["low"],
                            f"estimated_{name}_high": m["high"]})
    metrics.update({f"drift_{c['column']}": c["score"] for c in result["columns"]})
    with mlflow.start_run(run_name=f"drift-{Path(result['batch']).stem}",
                          tags={"driftloop.kind": "drift-check", "batch": result["batch"],
                                "status": result["status"],
                                "champion_version": str(result["champion_version"])}) as r:
        tracking.log_metrics(r.info.run_id, {k: v for k, v in metrics.items() if v is not None},
                             series=series)
        mlflow.log_artifacts(str(out), artifact_path="drift")
    return r.info.run_id


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batch", nargs="?", type=Path, help="batch file (default: the newest)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(run(load_params(), args.batch), indent=2, default=str))


if __name__ == "__main__":
    main()
