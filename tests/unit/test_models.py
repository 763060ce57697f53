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
