"""Fit every candidate learner on train, keep the best on val: the training core that the
`train` stage (with MLflow around it) and `driftloop replay` (in process) share."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.config import Params
from driftloop.learn.features import Preprocessor
from driftloop.learn.models import DriftloopModel, Fitted, Target, predict, train_mlp, train_xgboost
from driftloop.metrics import best_f1_threshold, higher_is_better, task_metrics

SECONDS_PER_DAY = 86_400.0


@dataclass
class Trained:
    chosen: str
    model: DriftloopModel          # the chosen learner with its preprocessing and threshold
    threshold: float | None        # binary cut-off chosen on val
    scores: dict[str, dict[str, float]]   # val metrics per candidate
    fitted: dict[str, Fitted]
    target: Target


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


def fit_candidate(kind: str, params: Params, pre: Preprocessor, train: pd.DataFrame,
                  val: pd.DataFrame, target: Target, *, checkpoint: Path | None = None,
                  sample_weight: np.ndarray | None = None) -> Fitted:
    t = params.train
    if kind == "xgboost":
        hp = t.xgboost
        if t.tuning.enabled:
            from driftloop.learn.tune import tune_xgboost

            hp = tune_xgboost(pre, train, val, target, hp, t.tuning, t.seed, t.class_weight)
        if t.engine == "dask":  # the search above runs locally; the final fit on the cluster
            from driftloop.learn.dask_engine import fit_xgboost_on_dask

            return fit_xgboost_on_dask(t.dask, pre, train, val, target, hp, t.seed,
                                       t.class_weight, sample_weight=sample_weight)
        return train_xgboost(pre, train, val, target, hp, t.seed, t.class_weight,
                             sample_weight=sample_weight)
    fit = train_mlp(pre, train, val, target, t.mlp, t.seed, t.class_weight, checkpoint=checkpoint,
                    sample_weight=sample_weight)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # finished: a later run must start afresh
    return fit


def fit_best(params: Params, train: pd.DataFrame, val: pd.DataFrame, *,
             checkpoint: Path | None = None,
             on_candidate: Callable[[str, Fitted, dict[str, float]], None] | None = None) -> Trained:
    """Fit each of `train.candidates` on `train` (rows weighted by recency when
    `train.recency_half_life_days` is set), score it on `val`, keep the best by
    `register.metric`. `on_candidate(kind, fit, val_scores)` after each, e.g. to log it."""
    d, task = params.data, params.task
    target = Target.fit(task, train[d.target])
    pre = Preprocessor.fit(train, d.numerical, d.categorical)
    y_val = target.encode(val[d.target])
    weights = recency_weights(train[d.time], params.train.recency_half_life_days)
    fitted: dict[str, Fitted] = {}
    scores: dict[str, dict[str, float]] = {}
    thresholds: dict[str, float | None] = {}
    for kind in params.train.candidates:
        fit = fit_candidate(kind, params, pre, train, val, target, checkpoint=checkpoint,
                            sample_weight=weights)
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
    return Trained(chosen, model, thresholds[chosen], scores, fitted, target)
