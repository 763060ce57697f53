"""evaluate: the chosen model on the held-out test split, once; metrics and plot data."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from pipelines import tracking
from pipelines.config import Params, load_params
from pipelines.io import read_table, write_csv, write_json

log = logging.getLogger(__name__)


def binary_metrics(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict:
    """Test metrics of probabilities `proba` against 0/1 labels `y` (pure)."""
    y = np.asarray(y).astype(int)
    pred = (np.asarray(proba) >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "auc": float(skm.roc_auc_score(y, proba)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "log_loss": float(skm.log_loss(y, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "positive_rate": float(y.mean()),
        "rows": int(len(y)),
        "threshold": threshold,
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def curves(y: np.ndarray, proba: np.ndarray, points: int = 200) -> dict[str, pd.DataFrame]:
    """ROC and PR curve points, thinned to about `points` rows each for plotting."""
    fpr, tpr, _ = skm.roc_curve(y, proba)
    prec, rec, _ = skm.precision_recall_curve(y, proba)

    def thin(df):
        step = max(1, len(df) // points)
        return df.iloc[::step].round(5).reset_index(drop=True)

    return {"roc": thin(pd.DataFrame({"fpr": fpr, "tpr": tpr})),
            "pr": thin(pd.DataFrame({"recall": rec, "precision": prec}))}


def run(params: Params) -> dict:
    import mlflow

    test = read_table(params.path("splits") / "test.parquet")
    model = mlflow.pyfunc.load_model(str(params.path("model")))
    y = test[params.data.target].to_numpy()
    proba = np.asarray(model.predict(test[params.data.features]))
    result = binary_metrics(y, proba, params.evaluate.threshold)
    out = params.report_dir("evaluate")
    for name, df in curves(y, proba).items():
        write_csv(out / f"{name}.csv", df)
    write_csv(out / "confusion.csv", pd.DataFrame(
        {"actual": y, "predicted": (proba >= params.evaluate.threshold).astype(int)}))
    write_json(out / "metrics.json", result)

    train_report = json.loads((params.report_dir("train") / "metrics.json").read_text())
    tracking.setup(params)
    flat = {f"test_{k}": v for k, v in result.items() if isinstance(v, float)}
    tracking.log_metrics(train_report["run_id"], flat)
    with mlflow.start_run(run_id=train_report["run_id"]):
        mlflow.log_artifacts(str(out), artifact_path="evaluate")
    log.info("test: auc %.4f f1 %.4f log_loss %.4f", result["auc"], result["f1"],
             result["log_loss"])
    return result


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(load_params())


if __name__ == "__main__":
    main()
