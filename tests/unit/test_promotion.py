import math

import numpy as np
import pytest

from driftloop.gate import decide_promotion, slice_regressions, threshold_failures
from driftloop.metrics import BootstrapResult, metric_fn, paired_bootstrap

THRESH = {"auc": 0.6, "brier": 0.25}


def gate(challenger_auc, champion_auc=None, low=None, **kw):
    boot = None if low is None else BootstrapResult(0.0, low, low + 0.02, 500, 0.95)
    return decide_promotion(metric="auc", challenger={"auc": challenger_auc, "brier": 0.1},
                            thresholds=THRESH, margin=kw.pop("margin", 0.0),
                            champion=None if champion_auc is None else {"auc": champion_auc},
                            bootstrap=boot, **kw)


def test_first_model_is_promoted_when_it_passes_the_thresholds():
    d = gate(0.8)
    assert d.promote and "first model" in d.reason


def test_first_model_below_a_threshold_is_not_promoted():
    assert not gate(0.55).promote
    d = decide_promotion(metric="auc", challenger={"auc": 0.9, "brier": 0.3}, thresholds=THRESH,
                         margin=0.0)
    assert not d.promote and "brier 0.3000 > 0.25" in d.reason


def test_better_with_interval_above_margin_is_promoted():
    d = gate(0.85, 0.80, low=0.01)
    assert d.promote and "interval" in d.reason


@pytest.mark.parametrize("low,margin", [(0.0, 0.0), (-0.01, 0.0), (0.004, 0.005)])
def test_interval_touching_or_below_the_margin_keeps_the_champion(low, margin):
    d = gate(0.85, 0.80, low=low, margin=margin)
    assert not d.promote and "does not lie above the margin" in d.reason


def test_identical_model_is_never_promoted_even_if_the_numbers_say_so():
    d = gate(0.85, 0.80, low=0.05, identical=True)
    assert not d.promote and "identical" in d.reason


def test_slice_regression_blocks_promotion():
    d = gate(0.85, 0.80, low=0.02, slices_regressed=["channel=broker: auc 0.80 -> 0.70"])
    assert not d.promote and "channel=broker" in d.reason


def test_nan_metric_is_never_promoted():
    assert not gate(math.nan).promote
    assert not gate(math.nan, 0.7, low=0.1).promote


def test_threshold_direction_follows_the_metric():
    assert threshold_failures({"rmse": 9.0, "r2": 0.5}, {"rmse": 10.0, "r2": 0.4}) == []
    assert len(threshold_failures({"rmse": 11.0, "r2": 0.3}, {"rmse": 10.0, "r2": 0.4})) == 2
    assert threshold_failures({}, {"auc": 0.5}) == ["auc nan < 0.5"]


def test_slice_regressions_respect_tolerance_and_direction():
    champ = [{"column": "c", "level": "a", "auc": 0.80}, {"column": "c", "level": "b", "auc": 0.80}]
    chal = [{"column": "c", "level": "a", "auc": 0.79}, {"column": "c", "level": "b", "auc": 0.70}]
    assert slice_regressions(chal, champ, "auc", 0.03) == ["c=b: auc 0.8000 -> 0.7000"]
    champ_r = [{"column": "c", "level": "a", "rmse": 1.0}]
    assert slice_regressions([{"column": "c", "level": "a", "rmse": 1.5}], champ_r, "rmse", 0.1)


def test_paired_bootstrap_separates_a_real_gain_from_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    signal = y + rng.normal(0, 1.0, 3000)
    good = 1 / (1 + np.exp(-signal))
    worse = 1 / (1 + np.exp(-(y + rng.normal(0, 2.0, 3000))))
    auc = metric_fn("binary", "auc")
    gain = paired_bootstrap(y, good, worse, auc, higher=True, n=300, seed=1, confidence=0.95)
    assert gain.low > 0.02
    same = paired_bootstrap(y, good, good, auc, higher=True, n=100, seed=1, confidence=0.95)
    assert same.low == same.high == 0.0
    # lower-is-better metrics are sign-flipped, so positive still means better
    ll = paired_bootstrap(y, good, worse, metric_fn("binary", "log_loss"), higher=False, n=200, seed=1,
                          confidence=0.95)
    assert ll.low > 0


def test_fast_auc_equals_sklearn_with_ties_and_is_nan_on_one_class():
    from sklearn.metrics import roc_auc_score

    from driftloop.metrics import binary_auc

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    p = np.round(rng.random(2000) * 0.5 + 0.3 * y, 2)  # rounded: many ties
    assert binary_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert np.isnan(binary_auc(np.ones(10), rng.random(10)))


@pytest.mark.parametrize("decimals", [None, 2])
def test_bootstrap_auc_from_counts_equals_the_auc_of_the_resampled_rows(decimals):
    from driftloop.metrics import ResampledAUC, binary_auc

    rng = np.random.default_rng(5)
    y = (rng.random(3000) < 0.2).astype(int)
    p = rng.random(3000) * 0.6 + 0.3 * y
    p = p if decimals is None else np.round(p, decimals)  # rounded: many ties
    auc = ResampledAUC(y, p)
    for _ in range(5):
        i = rng.integers(0, len(y), len(y))
        counts = np.bincount(i, minlength=len(y)).astype(float)
        assert auc(counts) == pytest.approx(binary_auc(y[i], p[i]), abs=1e-12)
    assert np.isnan(auc(np.where(y == 1, 1.0, 0.0)))  # a resample of one class
    # the gate's interval: the fast path gives what resampling the rows gives
    q = np.clip(p + rng.normal(0, 0.1, len(p)), 0, 1)
    fast = paired_bootstrap(y, p, q, binary_auc, higher=True, n=50, seed=2, confidence=0.9)
    rows = paired_bootstrap(y, p, q, lambda a, b: binary_auc(a, b), higher=True, n=50, seed=2,
                            confidence=0.9)
    assert (fast.low, fast.high, fast.n) == pytest.approx((rows.low, rows.high, rows.n), abs=1e-12)
