"""train: fit each candidate learner, keep the best on val, save it with its preprocessing."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from driftloop import tracking
from driftloop.config import Params, load_params
from driftloop.io import read_table, replace_dir, write_json, write_parquet
from driftloop.learn.fit import fit_best
from driftloop.learn.models import Fitted, pip_requirements
from driftloop.lock import leave, stage_run

# what run() imports when it needs it: a flow's stage server imports these ahead
# (driftloop/dvcserve.py), so the stage starts warm
LAZY_IMPORTS = ("mlflow.pyfunc", "xgboost", "torch", "sklearn.metrics", *tracking.STORE_IMPORTS,
                "torch._dynamo")  # (imported by torch's optimizers when first built: 2 s)
log = logging.getLogger(__name__)
SIGNATURE_ROWS = 5  # rows of example input for the MLflow model signature


def reference_rows(train: pd.DataFrame, *, time_col: str, rows: int) -> pd.DataFrame:
    """The drift reference that travels with the model (pure): its newest `rows` training
    rows, so after a retrain on a new regime the reference is that regime, not a mix. Rows
    with the same time keep their order; only the time column is sorted (a whole-frame sort
    costs 0.4 s at 1e6 rows)."""
    newest = train[time_col].reset_index(drop=True).sort_values(kind="stable").index[-rows:]
    return train.iloc[newest]


def run(params: Params) -> dict:
    import mlflow

    d, task = params.data, params.task
    splits = params.path("splits")
    # MLflow opens its store (on SQLite, 1-1.5 s of imports) and maps the installed packages
    # its model saving checks (1 s) while the splits are read
    with ThreadPoolExecutor(2, thread_name_prefix="mlflow-setup") as pool:
        store = pool.submit(tracking.setup, params)
        packages = pool.submit(tracking.warm_requirement_check)
        train, val = read_table(splits / "train.parquet"), read_table(splits / "val.parquet")
        store.result()
        packages.result()
    metric = params.register_.metric

    def log_candidate(kind: str, fit: Fitted, scores: dict[str, float]) -> None:
        hp = getattr(params.train, kind)
        with mlflow.start_run(run_name=kind, nested=True) as child:
            mlflow.log_params({f"{kind}.{k}": v for k, v in hp.model_dump().items()})
            mlflow.set_tags({"device": fit.device, "candidate": kind})
            tracking.log_metrics(child.info.run_id, {f"val_{k}": v for k, v in scores.items()}
                                 | {"best_iteration": fit.best_iteration,
                                    "train_seconds": fit.seconds}, series=fit.history)
        log.info("%s on %s: val %s=%.4f", kind, fit.device, metric, scores[metric])

    with mlflow.start_run(run_name="train") as parent:
        mlflow.log_params({"task": task, "train_rows": len(train), "val_rows": len(val),
                           "candidates": ",".join(params.train.candidates),
                           "class_weight": params.train.class_weight, "engine": params.train.engine,
                           "recency_half_life_days": params.train.recency_half_life_days})
        trained = fit_best(params, train, val, checkpoint=params.path("checkpoint"),
                           on_candidate=log_candidate)
        chosen, threshold, pyfunc = trained.chosen, trained.threshold, trained.model
        if trained.threads is not None:
            mlflow.set_tag("candidates_at_once", json.dumps(trained.threads, sort_keys=True))
        example = train[d.features].head(SIGNATURE_ROWS)
        signature = mlflow.models.infer_signature(example, pyfunc.predict(None, example))

        def save(tmp):
            mlflow.pyfunc.save_model(path=tmp, python_model=pyfunc, signature=signature,
                                     pip_requirements=pip_requirements())

        replace_dir(params.path("model"), save)
        info = mlflow.pyfunc.log_model(name="model", python_model=pyfunc, signature=signature,
                                       pip_requirements=pip_requirements())
        # The drift reference travels with the run: the champion's own newest training rows.
        ref = reference_rows(train, time_col=d.time, rows=params.drift.reference_rows)
        ref_path = write_parquet(params.report_dir("train") / "reference.parquet", ref)
        mlflow.log_artifact(str(ref_path), artifact_path="reference")
        mlflow.set_tags({"chosen": chosen, "device": trained.fitted[chosen].device})
        tracking.log_metrics(parent.info.run_id,
                             {f"val_{k}": v for k, v in trained.scores[chosen].items()}
                             | ({"threshold": threshold} if threshold is not None else {}))
    target = trained.target
    summary = {"run_id": parent.info.run_id, "model_uri": info.model_uri, "chosen": chosen,
               "task": task, "threshold": threshold,
               "classes": target.class_names,
               "device": {k: f.device for k, f in trained.fitted.items()}, "val": trained.scores,
               "trained_until": str(pd.to_datetime(train[d.time]).max())}
    write_json(params.report_dir("train") / "metrics.json", summary)
    log.info("chose %s (val %s=%.4f)", chosen, metric, trained.scores[chosen][metric])
    return summary


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    with stage_run(params, "train"):
        run(params)


if __name__ == "__main__":
    main()
    leave()  # done: skip the interpreter's teardown (driftloop.lock.leave)
