"""Target encoding and class weights (pure; the learners themselves are trained in
tests/integration/test_learners.py)."""

import pandas as pd
import pytest

from driftloop.learn.models import Target


def test_balanced_weights_give_each_class_the_same_total():
    t = Target.fit("binary", pd.Series([0] * 90 + [1] * 10, name="y"))
    codes = t.encode(pd.Series([0] * 90 + [1] * 10))
    w = t.weights(codes, "balanced")
    assert w[codes == 0].sum() == pytest.approx(w[codes == 1].sum())
    assert (t.weights(codes, "none") == 1).all()


def test_targets_reject_labels_they_cannot_learn():
    with pytest.raises(ValueError, match="must hold 0 and 1"):
        Target.fit("binary", pd.Series([0, 1, 2], name="y"))
    t = Target.fit("multiclass", pd.Series(["a", "b", "c"], name="y"))
    with pytest.raises(ValueError, match=r"labels \['z'\]"):
        t.encode(pd.Series(["a", "z"]))


def plan(candidates=("xgboost", "mlp"), **kw):
    from driftloop.learn.fit import candidate_threads

    args = {"parallel": True, "engine": "local", "on_gpu": False, "cpus": 2, "mlp_threads": 1,
            "xgb_threads": 2, **kw}
    return candidate_threads(list(candidates), **args)


def test_candidates_train_at_once_on_cpu_with_the_cores_the_mlp_leaves():
    assert plan() == {"mlp": 1, "xgboost": 1}
    assert plan(cpus=16, mlp_threads=2, xgb_threads=8) == {"mlp": 2, "xgboost": 8}
    assert plan(cpus=4, mlp_threads=1, xgb_threads=8) == {"mlp": 1, "xgboost": 3}
    assert plan(candidates=("mlp", "xgboost")) == {"mlp": 1, "xgboost": 1}


@pytest.mark.parametrize("why", [{"parallel": False}, {"engine": "dask"}, {"on_gpu": True},
                                 {"cpus": 1}, {"cpus": 2, "mlp_threads": 2},
                                 {"candidates": ("xgboost",)}, {"candidates": ("mlp",)}])
def test_candidates_train_one_after_another_otherwise(why):
    assert plan(**why) is None
