"""Both learners on CUDA (AMP for the MLP); skipped cleanly when no CUDA device is visible."""


import pytest

from driftloop.learn.models import train_mlp, train_xgboost
from tests.helpers import training_frames

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def data():
    return training_frames(20000, 5000, seed=1)


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
