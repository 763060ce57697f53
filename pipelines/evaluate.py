"""evaluate: the chosen model on the held-out test split, once.

Metrics for the task, calibration (binary: the reliability curve, and the calibrator the drift
check's performance estimate uses), per-slice metrics, plot data for DVC and MLflow, and a
markdown summary that the train flow publishes as a Prefect artifact.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from driftloop import tracking
from driftloop.config import Params, load_params
from driftloop.io import read_table, replace_dir, write_json, write_text
from driftloop.learn.models import as_matrix
from driftloop.lock import leave, stage_run
from driftloop.metrics import TASK_METRICS, encode_target, reliability_curve, slice_metrics, task_metrics
from driftloop.monitor.estimate import fit_calibrator

# what run() imports when it needs it: a flow's stage server imports these ahead
# (driftloop/dvcserve.py), so the stage starts warm
LAZY_IMPORTS = ("mlflow.pyfunc", "xgboost", "torch", "matplotlib.pyplot", *tracking.STORE_IMPORTS)
log = logging.getLogger(__name__)


def curves(y: np.ndarray, proba: np.ndarray, points: int = 200) -> dict[str, pd.DataFrame]:
    """ROC and PR curve points, thinned to about `points` rows each for plotting."""
    fpr, tpr, _ = skm.roc_curve(y, proba)
    prec, rec, _ = skm.precision_recall_curve(y, proba)

    def thin(df):
        step = max(1, len(df) // points)
        return df.iloc[::step].round(5).reset_index(drop=True)

    return {"roc": thin(pd.DataFrame({"fpr": fpr, "tpr": tpr})),
            "pr": thin(pd.DataFrame({"recall": rec, "precision": prec}))}


def figures(plots: dict[str, pd.DataFrame], folder) -> None:
    """PNG versions of the curves, for the MLflow UI (DVC renders the CSVs itself)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = {"roc": ("fpr", "tpr", "ROC"), "pr": ("recall", "precision", "precision-recall"),
             "calibration": ("predicted", "observed", "reliability"),
             "residuals": ("actual", "predicted", "predicted vs actual")}
    for name, (x, y, title) in specs.items():
        if name not in plots or plots[name].empty:
            continue
        fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
        df = plots[name]
        if name == "residuals":
            ax.scatter(df[x], df[y], s=2, alpha=.3)
        else:
            ax.plot(df[x], df[y], marker="o" if name == "calibration" else None)
        if name in ("roc", "calibration"):
            ax.plot([0, 1], [0, 1], ls="--", c="grey")
        ax.set(xlabel=x, ylabel=y, title=title)
        fig.tight_layout()
        fig.savefig(folder / f"{name}.png", metadata={"Software": None})
        plt.close(fig)


def summary_markdown(task: str, result: dict, slices: list[dict], chosen: str) -> str:
    main = [m for m in TASK_METRICS[task] if m in result]
    lines = [f"## Test evaluation ({task}, model: {chosen}, {result['rows']} rows)", "",
             "| metric | value |", "|---|---|"] + [f"| {m} | {result[m]:.4f} |" for m in main]
    if "threshold" in result:
        lines += ["", f"Decision threshold {result['threshold']:.3f} (chosen on val)."]
    if slices:
        key = main[0]
        lines += ["", f"| slice | level | rows | {key} |", "|---|---|---|---|"]
        lines += [f"| {s['column']} | {s['level']} | {s['rows']} | {s[key]:.4f} |" for s in slices]
    return "\n".join(lines) + "\n"


def run(params: Params) -> dict:
    import mlflow

    task, d = params.task, params.data
    train_report = json.loads((params.report_dir("train") / "metrics.json").read_text())
    tracking.setup(params)
    tracking.require_run(train_report["run_id"], f"{params.paths.reports}/train/metrics.json")
    test = read_table(params.path("splits") / "test.parquet")
    model = tracking.load_model(str(params.path("model")))
    y = encode_target(test[d.target], task, train_report.get("classes"))
    pred = as_matrix(model.predict(test[d.features]))
    threshold = train_report.get("threshold")
    result = task_metrics(task, y, pred, threshold)
    slices = slice_metrics(test, y, pred, task=task, columns=params.evaluate.slices,
                           min_rows=params.evaluate.slice_min_rows, threshold=threshold)
    out = params.report_dir("evaluate")
    plots: dict[str, pd.DataFrame] = {}
    if task == "binary":
        plots = curves(y, pred)
        plots["calibration"] = pd.DataFrame(reliability_curve(y, pred, params.evaluate.calibration_bins))
        plots["confusion"] = pd.DataFrame({"actual": y, "predicted": (pred >= threshold).astype(int)})
    elif task == "multiclass":
        classes = train_report["classes"]
        plots["confusion"] = pd.DataFrame({"actual": [classes[i] for i in y],
                                           "predicted": [classes[i] for i in pred.argmax(1)]})
    else:
        plots["residuals"] = pd.DataFrame({"actual": y, "predicted": pred.round(5)})

    def fill(tmp):
        for name, df in plots.items():
            df.to_csv(tmp / f"{name}.csv", index=False)
        figures(plots, tmp)

    # held-out rows teach the calibration that the drift check's performance estimate uses
    e = params.estimate
    write_json(out / "calibration.json",
               fit_calibrator(pred, y, min_rows=e.min_rows, bins=e.bins).to_dict()
               if task == "binary" else {"method": "none", "reason": f"no estimate for {task} tasks"})
    replace_dir(out / "plots", fill)
    write_json(out / "slices.json", slices)
    write_text(out / "summary.md", summary_markdown(task, result, slices, train_report["chosen"]))
    write_json(out / "metrics.json", result)

    flat = {f"test_{k}": v for k, v in result.items() if isinstance(v, float)}
    tracking.log_metrics(train_report["run_id"], flat)
    with mlflow.start_run(run_id=train_report["run_id"]):
        mlflow.log_artifacts(str(out), artifact_path="evaluate")
    key = TASK_METRICS[task][0]
    log.info("test %s %.4f (%s)", key, result[key],
             ", ".join(f"{k} {result[k]:.4f}" for k in TASK_METRICS[task][1:]))
    return result


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    with stage_run(params, "evaluate"):
        run(params)


if __name__ == "__main__":
    main()
    leave()  # done: skip the interpreter's teardown (driftloop.lock.leave)
