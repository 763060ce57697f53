"""Optuna search over the XGBoost knobs: each trial a nested MLflow run, with pruning."""

from __future__ import annotations

import logging

import pandas as pd

from driftloop.config import SearchRange, TuningParams, XGBParams
from driftloop.learn.features import Preprocessor
from driftloop.learn.models import Target, predict, train_xgboost, val_score

log = logging.getLogger(__name__)


def search_space(trial, base: XGBParams, space: dict[str, SearchRange]) -> XGBParams:
    """One trial's XGBoost knobs: each knob in `space` (train.tuning.space) drawn from its
    range, the others as in `base`."""
    picks = {}
    for name, r in space.items():
        if isinstance(getattr(base, name), int) and isinstance(r.low, int) and isinstance(r.high, int):
            picks[name] = trial.suggest_int(name, r.low, r.high, log=r.log)
        else:
            picks[name] = trial.suggest_float(name, float(r.low), float(r.high), log=r.log)
    return base.model_copy(update=picks)


def _pruning_callback(trial, metric: str):
    import optuna
    import xgboost as xgb

    class Prune(xgb.callback.TrainingCallback):
        """Report the val metric each round; stop the trial when the pruner says so."""

        def after_iteration(self, model, epoch, evals_log):
            value = evals_log["val"][metric][-1]
            trial.report(value if metric == "auc" else -value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {epoch}")
            return False

    return Prune()


def tune_xgboost(pre: Preprocessor, train: pd.DataFrame, val: pd.DataFrame, target: Target,
                 base: XGBParams, tuning: TuningParams, seed: int, class_weight: str) -> XGBParams:
    """Best XGBoost params on val within the trial and time budget."""
    import mlflow
    import optuna

    from driftloop import tracking

    metric = {"binary": "auc", "multiclass": "mlogloss", "regression": "rmse"}[target.task]
    y_val = target.encode(val[target.column])

    def objective(trial):
        hp = search_space(trial, base, tuning.space)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True) as run:
            mlflow.log_params(trial.params)
            fit = train_xgboost(pre, train, val, target, hp, seed, class_weight,
                                callbacks=[_pruning_callback(trial, metric)])
            score = val_score(target, y_val, predict("xgboost", fit.model, pre, target, val,
                                                     fit.best_iteration))
            tracking.log_metrics(run.info.run_id, {"val_score": score,
                                                   "best_iteration": fit.best_iteration})
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=tuning.seed),
                                pruner=optuna.pruners.MedianPruner(n_warmup_steps=tuning.warmup_rounds))
    study.optimize(objective, n_trials=tuning.n_trials, timeout=tuning.timeout_s)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = len(study.trials) - len(done)
    log.info("optuna: %d trials (%d pruned), best val score %.4f with %s", len(study.trials),
             pruned, study.best_value, study.best_params)
    return base.model_copy(update=study.best_params)
