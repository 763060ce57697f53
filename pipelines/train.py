"""train: fit each candidate learner, keep the best on val, save it with its preprocessing."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from driftloop import tracking
from driftloop.config import Params, load_params
from driftloop.io import read_table, replace_dir, write_json, write_parquet
from driftloop.learn.features import Preprocessor
from driftloop.learn.models import (
    DriftloopModel,
    Fitted,
    Target,
    pip_requirements,
    predict,
    train_mlp,
    train_xgboost,
)
from driftloop.metrics import best_f1_threshold, higher_is_better, task_metrics

log = logging.getLogger(__name__)


def choose_candidate(scores: dict[str, dict[str, float]], metric: str) -> str:
    """Best candidate on val by `metric` (direction-aware); ties go to the first listed."""
    if not scores:
        raise ValueError("no candidates were trained; list some under train.candidates")
    sign = 1.0 if higher_is_better(metric) else -1.0
    return max(scores, key=lambda k: sign * scores[k][metric]
               if not math.isnan(scores[k][metric]) else -math.inf)


def decision_threshold(task: str, setting: float | str, y_val: np.ndarray, val_pred: np.ndarray
                       ) -> float | None:
    """The binary cut-off (pure): `evaluate.threshold` as a number, or the F1-best one on val,
    so the test split stays untouched until evaluate. Other tasks have none."""
    if task != "binary":
        return None
    return best_f1_threshold(y_val, val_pred) if setting == "best_f1_on_val" else float(setting)


def fit_candidate(kind: str, params: Params, pre: Preprocessor, train: pd.DataFrame,
                  val: pd.DataFrame, target: Target) -> Fitted:
    t = params.train
    if kind == "xgboost":
        hp = t.xgboost
        if t.tuning.enabled:
            from driftloop.learn.tune import tune_xgboost

            hp = tune_xgboost(pre, train, val, target, hp, t.tuning, t.seed, t.class_weight)
        return train_xgboost(pre, train, val, target, hp, t.seed, t.class_weight)
    ckpt = params.path("checkpoint")
    fit = train_mlp(pre, train, val, target, t.mlp, t.seed, t.class_weight, checkpoint=ckpt)
    ckpt.unlink(missing_ok=True)  # finished: a later run must start afresh
    return fit


def run(params: Params) -> dict:
    import mlflow

    d, task = params.data, params.task
    splits = params.path("splits")
    train, val = read_table(splits / "train.parquet"), read_table(splits / "val.parquet")
    target = Target.fit(task, train[d.target])
    pre = Preprocessor.fit(train, d.numerical, d.categorical)
    y_val = target.encode(val[d.target])
    metric = params.register_.metric
    tracking.setup(params)
    fitted: dict[str, Fitted] = {}
    scores: dict[str, dict] = {}
    thresholds: dict[str, float | None] = {}
    with mlflow.start_run(run_name="train") as parent:
        mlflow.log_params({"task": task, "train_rows": len(train), "val_rows": len(val),
                           "candidates": ",".join(params.train.candidates),
                           "class_weight": params.train.class_weight})
        for kind in params.train.candidates:
            hp = getattr(params.train, kind)
            with mlflow.start_run(run_name=kind, nested=True) as child:
                mlflow.log_params({f"{kind}.{k}": v for k, v in hp.model_dump().items()})
                fit = fit_candidate(kind, params, pre, train, val, target)
                pred = predict(kind, fit.model, pre, target, val, fit.best_iteration)
                thresholds[kind] = decision_threshold(task, params.evaluate.threshold, y_val, pred)
                scores[kind] = {k: v for k, v in task_metrics(task, y_val, pred, thresholds[kind]).items()
                                if isinstance(v, float)}
                mlflow.set_tags({"device": fit.device, "candidate": kind})
                tracking.log_metrics(child.info.run_id,
                                     {f"val_{k}": v for k, v in scores[kind].items()}
                                     | {"best_iteration": fit.best_iteration,
                                        "train_seconds": fit.seconds},
                                     series=fit.history)
                fitted[kind] = fit
                log.info("%s on %s: val %s=%.4f", kind, fit.device, metric, scores[kind][metric])
        chosen = choose_candidate(scores, metric)
        best = fitted[chosen]
        threshold = thresholds[chosen]
        pyfunc = DriftloopModel(chosen, best.model, pre, target, best.best_iteration, threshold)
        example = train[d.features].head(5)
        signature = mlflow.models.infer_signature(example, pyfunc.predict(None, example))

        def save(tmp):
            mlflow.pyfunc.save_model(path=tmp, python_model=pyfunc, signature=signature,
                                     pip_requirements=pip_requirements())

        replace_dir(params.path("model"), save)
        info = mlflow.pyfunc.log_model(name="model", python_model=pyfunc, signature=signature,
                                       pip_requirements=pip_requirements())
        # The drift reference travels with the run: the champion's own training rows.
        ref = train.sample(min(len(train), params.drift.reference_rows), random_state=params.drift.seed)
        ref_path = write_parquet(params.report_dir("train") / "reference.parquet", ref)
        mlflow.log_artifact(str(ref_path), artifact_path="reference")
        mlflow.set_tags({"chosen": chosen, "device": best.device})
        tracking.log_metrics(parent.info.run_id, {f"val_{k}": v for k, v in scores[chosen].items()}
                             | ({"threshold": threshold} if threshold is not None else {}))
    summary = {"run_id": parent.info.run_id, "model_uri": info.model_uri, "chosen": chosen,
               "task": task, "threshold": threshold,
               "classes": [str(c) for c in target.classes] if target.classes else None,
               "device": {k: f.device for k, f in fitted.items()}, "val": scores}
    write_json(params.report_dir("train") / "metrics.json", summary)
    log.info("chose %s (val %s=%.4f)", chosen, metric, scores[chosen][metric])
    return summary


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(load_params())


if __name__ == "__main__":
    main()
