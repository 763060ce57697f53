"""The learners trained for real on small simulated data: determinism, checkpoint resume,
early stopping. (Moved from tests/unit: they train models, so they are not unit tests.)"""

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
