import math

import pytest

from pipelines.register import decide_promotion

KW = {"metric": "auc", "margin": 0.01, "min_metric": 0.6}


def test_first_model_is_promoted_when_it_clears_the_floor():
    d = decide_promotion(0.8, None, **KW)
    assert d.promote and "first model" in d.reason


def test_first_model_below_the_floor_is_not_promoted():
    d = decide_promotion(0.55, None, **KW)
    assert not d.promote and "floor" in d.reason


def test_better_by_more_than_margin_is_promoted():
    d = decide_promotion(0.85, 0.80, **KW)
    assert d.promote and "+0.0500" in d.reason


@pytest.mark.parametrize("challenger", [0.80, 0.805, 0.81, 0.79])
def test_tie_small_gain_or_worse_keeps_the_champion(challenger):
    # 0.81 - 0.80 equals the margin exactly: "beats by more than the margin" fails
    assert not decide_promotion(challenger, 0.80, **KW).promote


def test_nan_metric_is_never_promoted():
    assert not decide_promotion(math.nan, None, **KW).promote
    assert not decide_promotion(math.nan, 0.7, **KW).promote
