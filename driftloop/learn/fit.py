"""Fit every candidate learner on train, keep the best on val: the training core that the
`train` stage (with MLflow around it) and `driftloop replay` (in process) share."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.config import Params
from driftloop.learn.devices import choose_device, cuda_visible, usable_cpus
from driftloop.learn.features import Preprocessor
from driftloop.learn.models import DriftloopModel, Fitted, Target, predict, train_mlp, train_xgboost
from driftloop.metrics import best_f1_threshold, higher_is_better, task_metrics

log = logging.getLogger(__name__)
SECONDS_PER_DAY = 86_400.0


@dataclass
class Trained:
    chosen: str
    model: DriftloopModel          # the chosen learner with its preprocessing and threshold
    threshold: float | None        # binary cut-off chosen on val
    scores: dict[str, dict[str, float]]   # val metrics per candidate
    fitted: dict[str, Fitted]
    target: Target
    threads: dict[str, int] | None = None   # per candidate, when they trained at the same time


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


def recency_weights(times: pd.Series, half_life_days: float | None) -> np.ndarray | None:
    """Row weights halving every `half_life_days` back from the newest row (pure); None
    (every row counts the same) when no half-life is set. Rows without a time count fully."""
    if half_life_days is None:
        return None
    t = pd.to_datetime(times, utc=True)
    age_days = (t.max() - t).dt.total_seconds().fillna(0.0).to_numpy() / SECONDS_PER_DAY
    return np.power(0.5, age_days / half_life_days)


def candidate_threads(candidates: list[str], *, parallel: bool, engine: str, on_gpu: bool,
                      cpus: int, mlp_threads: int, xgb_threads: int) -> dict[str, int] | None:
    """CPU threads for each candidate when they train at the same time, or None: one after
    another (pure). At the same time only when `train.parallel_candidates` asks, for both
    learners, on CPU (on a GPU neither is bound by the cores), with the local engine (a
    `LocalCluster` takes the cores itself) and with a core left beside the MLP's threads.
    The MLP keeps `mlp.threads`: its result depends on them. XGBoost takes the cores left, at
    most `n_jobs`: its model is the same on any number of threads (a test checks)."""
    if (not parallel or sorted(candidates) != ["mlp", "xgboost"] or engine != "local" or on_gpu
            or cpus <= mlp_threads):
        return None
    return {"mlp": mlp_threads, "xgboost": min(xgb_threads, cpus - mlp_threads)}


def fit_candidate(kind: str, params: Params, pre: Preprocessor, train: pd.DataFrame,
                  val: pd.DataFrame, target: Target, *, checkpoint: Path | None = None,
                  sample_weight: np.ndarray | None = None, threads: int | None = None) -> Fitted:
    """Fit one learner; `threads` overrides its CPU threads (`n_jobs` or `mlp.threads`)."""
    t = params.train
    if kind == "xgboost":
        hp = t.xgboost if threads is None else t.xgboost.model_copy(update={"n_jobs": threads})
        if t.tuning.enabled:
            from driftloop.learn.tune import tune_xgboost

            hp = tune_xgboost(pre, train, val, target, hp, t.tuning, t.seed, t.class_weight)
        if t.engine == "dask":  # the search above runs locally; the final fit on the cluster
            from driftloop.learn.dask_engine import fit_xgboost_on_dask

            return fit_xgboost_on_dask(t.dask, pre, train, val, target, hp, t.seed,
                                       t.class_weight, sample_weight=sample_weight)
        fit = train_xgboost(pre, train, val, target, hp, t.seed, t.class_weight,
                            sample_weight=sample_weight)
        if threads is not None:  # the saved model scores on the configured threads
            fit.model.set_param({"nthread": t.xgboost.n_jobs})
        return fit
    hp = t.mlp if threads is None else t.mlp.model_copy(update={"threads": threads})
    fit = train_mlp(pre, train, val, target, hp, t.seed, t.class_weight, checkpoint=checkpoint,
                    sample_weight=sample_weight)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # finished: a later run must start afresh
    return fit


def fit_best(params: Params, train: pd.DataFrame, val: pd.DataFrame, *,
             checkpoint: Path | None = None,
             on_candidate: Callable[[str, Fitted, dict[str, float]], None] | None = None) -> Trained:
    """Fit each of `train.candidates` on `train` (rows weighted by recency when
    `train.recency_half_life_days` is set; at the same time where `candidate_threads` says),
    score it on `val`, keep the best by `register.metric`. `on_candidate(kind, fit,
    val_scores)` after each, in the listed order, e.g. to log it."""
    d, task, t = params.data, params.task, params.train
    target = Target.fit(task, train[d.target])
    pre = Preprocessor.fit(train, d.numerical, d.categorical)
    y_val = target.encode(val[d.target])
    weights = recency_weights(train[d.time], t.recency_half_life_days)
    on_gpu = t.parallel_candidates and any(  # (the device probe only where it can matter)
        choose_device(dev, cuda_available=cuda_visible()) == "cuda"
        for dev in (t.xgboost.device, t.mlp.device))
    plan = candidate_threads(t.candidates, parallel=t.parallel_candidates, engine=t.engine,
                             on_gpu=on_gpu, cpus=usable_cpus(), mlp_threads=t.mlp.threads,
                             xgb_threads=t.xgboost.n_jobs)

    def fit_one(kind: str) -> Fitted:
        return fit_candidate(kind, params, pre, train, val, target, checkpoint=checkpoint,
                             sample_weight=weights, threads=None if plan is None else plan[kind])

    if plan is None:
        fits = {kind: fit_one(kind) for kind in t.candidates}
    else:
        log.info("training %s at the same time, threads %s", " and ".join(t.candidates), plan)
        with ThreadPoolExecutor(len(t.candidates), thread_name_prefix="fit") as pool:
            futures = {kind: pool.submit(fit_one, kind) for kind in t.candidates}
        fits = {kind: f.result() for kind, f in futures.items()}  # the first listed failure
    fitted: dict[str, Fitted] = {}
    scores: dict[str, dict[str, float]] = {}
    thresholds: dict[str, float | None] = {}
    for kind in t.candidates:
        fit = fits[kind]
        pred = predict(kind, fit.model, pre, target, val, fit.best_iteration)
        thresholds[kind] = decision_threshold(task, params.evaluate.threshold, y_val, pred)
        scores[kind] = {k: v for k, v in task_metrics(task, y_val, pred, thresholds[kind]).items()
                        if isinstance(v, float)}
        fitted[kind] = fit
        if on_candidate is not None:
            on_candidate(kind, fit, scores[kind])
    chosen = choose_candidate(scores, params.register_.metric)
    best = fitted[chosen]
    model = DriftloopModel(chosen, best.model, pre, target, best.best_iteration, thresholds[chosen])
    return Trained(chosen, model, thresholds[chosen], scores, fitted, target, plan)
