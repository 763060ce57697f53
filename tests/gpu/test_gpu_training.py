"""Both learners on CUDA (AMP for the MLP); skipped cleanly when no CUDA device is visible."""

from datetime import date

import pytest

from pipelines.config import load_params
from pipelines.features import Preprocessor
from pipelines.models import Target, train_mlp, train_xgboost
from pipelines.simulate import simulate_week

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def data():
    p = load_params()
    train = simulate_week(0, rows=20000, seed=1, start=date(2026, 1, 5), drift=False)
    val = simulate_week(1, rows=5000, seed=1, start=date(2026, 1, 5), drift=False)
    pre = Preprocessor.fit(train, p.data.numerical, p.data.categorical)
    return p, pre, train, val, Target.fit("binary", train[p.data.target])


def test_xgboost_runs_on_cuda(data):
    p, pre, train, val, target = data
    hp = p.train.xgboost.model_copy(update={"device": "cuda"})
    fit = train_xgboost(pre, train, val, target, hp, seed=0)
    assert fit.device.startswith("cuda")


def test_mlp_runs_on_cuda_with_amp(data):
    import torch

    p, pre, train, val, target = data
    assert torch.cuda.is_available(), "a CUDA build of torch is needed for the MLP on GPU"
    hp = p.train.mlp.model_copy(update={"device": "cuda", "max_epochs": 3})
    fit = train_mlp(pre, train, val, target, hp, seed=0)
    assert fit.device == "cuda" and max(fit.history["val_score"]) > 0.7
