"""train: fit each candidate learner, keep the best on val, save it with its preprocessing."""

from __future__ import annotations

import logging
import math

from pipelines import tracking
from pipelines.config import Params, load_params
from pipelines.features import Preprocessor
from pipelines.io import read_table, replace_dir, write_json, write_parquet
from pipelines.models import (
    DriftloopModel,
    Fitted,
    pip_requirements,
    predict_proba,
    train_mlp,
    train_xgboost,
)

log = logging.getLogger(__name__)
TRAINERS = {"xgboost": train_xgboost, "mlp": train_mlp}


def val_scores(y, proba) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    return {"auc": float(roc_auc_score(y, proba)), "log_loss": float(log_loss(y, proba, labels=[0, 1]))}


def choose_candidate(scores: dict[str, dict[str, float]], metric: str) -> str:
    """Best candidate on val: highest AUC, or lowest log loss; ties go to the first listed."""
    if not scores:
        raise ValueError("no candidates were trained; list some under train.candidates")
    sign = -1.0 if metric == "log_loss" else 1.0
    return max(scores, key=lambda k: sign * (scores[k][metric]
                                             if not math.isnan(scores[k][metric]) else -math.inf))


def run(params: Params) -> dict:
    import mlflow

    d = params.data
    splits = params.path("splits")
    train, val = read_table(splits / "train.parquet"), read_table(splits / "val.parquet")
    pre = Preprocessor.fit(train, d.numerical, d.categorical)
    tracking.setup(params)
    fitted: dict[str, Fitted] = {}
    scores: dict[str, dict[str, float]] = {}
    with mlflow.start_run(run_name="train") as parent:
        mlflow.log_params({"train_rows": len(train), "val_rows": len(val),
                           "candidates": ",".join(params.train.candidates)})
        for kind in params.train.candidates:
            hp = getattr(params.train, kind)
            with mlflow.start_run(run_name=kind, nested=True) as child:
                mlflow.log_params({f"{kind}.{k}": v for k, v in hp.model_dump().items()})
                fit = TRAINERS[kind](pre, train, val, d.target, hp, params.train.seed)
                proba = predict_proba(kind, fit.model, pre, val, fit.best_iteration)
                scores[kind] = val_scores(val[d.target], proba)
                mlflow.set_tags({"device": fit.device, "candidate": kind})
                tracking.log_metrics(child.info.run_id,
                                     {f"val_{k}": v for k, v in scores[kind].items()}
                                     | {"best_iteration": fit.best_iteration,
                                        "train_seconds": fit.seconds},
                                     series=fit.history)
                fitted[kind] = fit
                log.info("%s on %s: val %s", kind, fit.device, scores[kind])
        chosen = choose_candidate(scores, params.train.selection_metric)
        best = fitted[chosen]
        pyfunc = DriftloopModel(chosen, best.model, pre, best.best_iteration, d.features)
        example = train[d.features].head(5)
        signature = mlflow.models.infer_signature(
            example, pyfunc.predict(None, example))

        def save(tmp):
            mlflow.pyfunc.save_model(path=tmp, python_model=pyfunc, signature=signature,
                                     pip_requirements=pip_requirements())

        replace_dir(params.path("model"), save)
        info = mlflow.pyfunc.log_model(name="model", python_model=pyfunc, signature=signature,
                                       pip_requirements=pip_requirements())
        # The drift reference travels with the run: the champion's own training rows.
        ref = train.sample(min(len(train), params.drift.reference_rows),
                           random_state=params.drift.seed)
        ref_path = write_parquet(params.report_dir("train") / "reference.parquet", ref)
        mlflow.log_artifact(str(ref_path), artifact_path="reference")
        mlflow.set_tags({"chosen": chosen, "device": best.device})
        tracking.log_metrics(parent.info.run_id,
                             {f"val_{k}": v for k, v in scores[chosen].items()})
    summary = {"run_id": parent.info.run_id, "model_uri": info.model_uri, "chosen": chosen,
               "device": {k: f.device for k, f in fitted.items()}, "val": scores}
    write_json(params.report_dir("train") / "metrics.json", summary)
    log.info("chose %s (val %s=%.4f)", chosen, params.train.selection_metric,
             scores[chosen][params.train.selection_metric])
    return summary


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(load_params())


if __name__ == "__main__":
    main()
