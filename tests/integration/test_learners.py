"""The learners trained for real on small simulated data: determinism, checkpoint resume,
early stopping. (Moved from tests/unit: they train models, so they are not unit tests.)"""

import json

import numpy as np
import pytest

from driftloop.learn.models import predict, train_mlp, train_xgboost
from tests.helpers import training_frames


@pytest.fixture(scope="module")
def setup():
    return training_frames(1500, 500, seed=2)


def mlp_params(p, **kw):
    return p.train.mlp.model_copy(update={"max_epochs": 4, "patience": 10, "threads": 1, **kw})


def weights(fit):
    return {k: v.clone() for k, v in fit.model.state_dict().items()}


def same(a, b):
    return all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_mlp_is_deterministic_on_cpu(setup):
    p, pre, train, val, target = setup
    a = train_mlp(pre, train, val, target, mlp_params(p), seed=5)
    b = train_mlp(pre, train, val, target, mlp_params(p), seed=5)
    c = train_mlp(pre, train, val, target, mlp_params(p), seed=6)
    assert same(weights(a), weights(b)) and not same(weights(a), weights(c))
    assert a.device == "cpu"


def test_interrupted_mlp_resumes_from_its_checkpoint(setup, tmp_path, monkeypatch):
    import torch

    p, pre, train, val, target = setup
    full = train_mlp(pre, train, val, target, mlp_params(p), seed=5)
    ckpt = tmp_path / "mlp.pt"
    real_clip, calls = torch.nn.utils.clip_grad_norm_, {"n": 0}

    def crash_in_epoch_three(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2 * 3 + 1:  # 3 batches per epoch: crash in the third epoch
            raise RuntimeError("worker lost")
        return real_clip(*a, **kw)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", crash_in_epoch_three)
    with pytest.raises(RuntimeError, match="worker lost"):
        train_mlp(pre, train, val, target, mlp_params(p, batch_size=512), seed=5, checkpoint=ckpt)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", real_clip)
    assert torch.load(ckpt, weights_only=False)["state"]["epoch"] == 1
    resumed = train_mlp(pre, train, val, target, mlp_params(p, batch_size=512), seed=5, checkpoint=ckpt)
    assert len(resumed.history["val_score"]) == len(full.history["val_score"])
    assert same(weights(resumed), weights(full))  # as if it had never stopped


def test_stale_checkpoint_is_ignored(setup, tmp_path):
    p, pre, train, val, target = setup
    ckpt = tmp_path / "mlp.pt"
    train_mlp(pre, train, val, target, mlp_params(p), seed=5, checkpoint=ckpt)
    other = train_mlp(pre, train, val, target, mlp_params(p), seed=9, checkpoint=ckpt)
    fresh = train_mlp(pre, train, val, target, mlp_params(p), seed=9)
    assert same(weights(other), weights(fresh))


def test_xgboost_early_stopping_uses_the_best_iteration(setup):
    import xgboost as xgb

    p, pre, train, val, target = setup
    hp = p.train.xgboost.model_copy(update={"n_estimators": 300, "early_stopping_rounds": 10,
                                            "n_jobs": 1, "learning_rate": 0.3})
    fit = train_xgboost(pre, train, val, target, hp, seed=0)
    assert fit.device == "cpu" and fit.model.num_boosted_rounds() == fit.best_iteration + 11
    best = predict("xgboost", fit.model, pre, target, val, fit.best_iteration)
    every = fit.model.predict(xgb.DMatrix(pre.frame(val), enable_categorical=True))
    assert not np.allclose(best, every)


def test_candidates_trained_at_once_are_the_models_trained_one_after_another(setup, monkeypatch,
                                                                           caplog):
    import driftloop.learn.fit as fit_mod

    p, pre, train, val, target = setup
    t = p.train
    small = t.model_copy(update={
        "candidates": ["xgboost", "mlp"],
        "xgboost": t.xgboost.model_copy(update={"n_estimators": 40, "device": "cpu", "n_jobs": 2}),
        "mlp": mlp_params(p, device="cpu")})
    monkeypatch.setattr(fit_mod, "usable_cpus", lambda: 2)  # a core each, on any machine
    threads_seen = []
    real = fit_mod.train_xgboost
    monkeypatch.setattr(fit_mod, "train_xgboost",
                        lambda *a, **kw: threads_seen.append(a[4].n_jobs) or real(*a, **kw))
    runs = {}
    for parallel in (False, True):
        params = p.model_copy(update={"train": small.model_copy(
            update={"parallel_candidates": parallel})})
        with caplog.at_level("INFO", logger="driftloop.learn.fit"):
            caplog.clear()
            runs[parallel] = fit_mod.fit_best(params, train, val)
        assert ("at the same time" in caplog.text) is parallel
    assert threads_seen == [2, 1]  # at once, XGBoost leaves the MLP its core
    seq, par = runs[False], runs[True]
    assert seq.fitted["xgboost"].model.save_raw() == par.fitted["xgboost"].model.save_raw()
    assert json.loads(par.fitted["xgboost"].model.save_config())["learner"]["generic_param"][
        "nthread"] == "2"  # scoring later uses the configured threads again
    assert same(weights(seq.fitted["mlp"]), weights(par.fitted["mlp"]))
    assert seq.scores == par.scores and seq.chosen == par.chosen


def test_a_candidate_failing_while_the_other_trains_fails_the_fit(setup, monkeypatch):
    import driftloop.learn.fit as fit_mod

    p, pre, train, val, target = setup
    t = p.train
    params = p.model_copy(update={"train": t.model_copy(update={
        "parallel_candidates": True, "candidates": ["xgboost", "mlp"],
        "xgboost": t.xgboost.model_copy(update={"n_estimators": 20, "device": "cpu"}),
        "mlp": mlp_params(p, device="cpu")})})
    monkeypatch.setattr(fit_mod, "usable_cpus", lambda: 2)

    def broken(*a, **kw):
        raise RuntimeError("xgboost ran out of memory")

    monkeypatch.setattr(fit_mod, "train_xgboost", broken)
    with pytest.raises(RuntimeError, match="ran out of memory"):
        fit_mod.fit_best(params, train, val)
