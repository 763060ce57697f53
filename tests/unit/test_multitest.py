"""Multiple-testing corrections and the corrected drift verdict: exact on hand-worked examples,
calm on 52 checks of unchanged data where a per-feature 95 % floor fires often, and still
quick to flag a real shift."""

import numpy as np
import pandas as pd
import pytest

from driftloop.monitor import drift_stats
from driftloop.monitor.multitest import (
    adjust,
    benjamini_hochberg,
    bootstrap_pvalue,
    feature_tests,
    holm,
    min_rounds,
    null_statistics,
    null_table,
    significant_features,
)

ALPHA = 0.05
REFERENCE_ROWS, BATCH_ROWS, CHECKS = 2000, 1500, 52  # two weeks of reference, a year of weeks
ROUNDS = 499  # >= min_rounds(23, 0.05) = 459
SEED = 0


@pytest.mark.parametrize("p,holm_adj,bh_adj", [
    # sorted 0.005, 0.01, 0.03, 0.04: Holm x4, x3, x2, x1 then running max; BH x4/1, x4/2, x4/3,
    # x4/4 then running min from the top
    ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02], [0.02, 0.04, 0.04, 0.02]),
    ([0.01, 0.02, 0.03, 0.04, 0.05], [0.05, 0.08, 0.09, 0.09, 0.09], [0.05] * 5),
    ([0.5, 0.9], [1.0, 1.0], [0.9, 0.9]),
    ([0.3], [0.3], [0.3]),
])
def test_holm_and_bh_match_hand_worked_examples(p, holm_adj, bh_adj):
    np.testing.assert_allclose(holm(p), holm_adj, rtol=1e-12)
    np.testing.assert_allclose(benjamini_hochberg(p), bh_adj, rtol=1e-12)


def test_bh_flags_more_than_holm_on_the_same_pvalues():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}
    assert significant_features(p, alpha=ALPHA, correction="holm").significant == ["a", "d"]
    assert significant_features(p, alpha=ALPHA, correction="bh").significant == ["a", "b", "c", "d"]
    assert significant_features(p, alpha=0.01, correction="none").significant == ["a", "d"]
    assert not significant_features({}, alpha=ALPHA, correction="holm").drifted


def test_corrections_agree_with_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(0).uniform(0, 0.2, size=40)
    p[[3, 7, 11]] = p[2]  # ties
    for ours, theirs in (("holm", "holm"), ("bh", "fdr_bh")):
        reject, adjusted, _, _ = multitest.multipletests(p, alpha=ALPHA, method=theirs)
        np.testing.assert_allclose(adjust(p, ours), adjusted, rtol=1e-12)
        assert (adjust(p, ours) <= ALPHA).tolist() == reject.tolist()


@pytest.mark.parametrize("call,match", [
    (lambda: adjust([0.1, 1.2], "holm"), "p-values must lie in \\[0, 1\\]; got \\[1.2\\]"),
    (lambda: adjust([0.1], "bonferroni"), "unknown correction 'bonferroni'"),
    (lambda: significant_features({"a": 0.1}, alpha=0, correction="holm"), "alpha must lie"),
])
def test_bad_inputs_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bootstrap_pvalue_counts_the_observed_as_one_of_the_draws():
    null = np.array([0.1, 0.2, 0.3, 0.4])
    assert bootstrap_pvalue(0.35, null) == pytest.approx(2 / 5)
    assert bootstrap_pvalue(0.5, null) == pytest.approx(1 / 5)   # never below 1 / (1 + rounds)
    assert bootstrap_pvalue(0.1, null) == 1.0
    assert bootstrap_pvalue(float("nan"), null) == 1.0
    assert bootstrap_pvalue(0.5, np.array([np.nan])) == 1.0


def test_min_rounds_is_where_holm_can_first_flag_a_lone_feature():
    assert min_rounds(23, ALPHA) == 459
    assert holm([1 / (1 + 459)] + [1.0] * 22)[0] == pytest.approx(ALPHA)
    assert holm([1 / (1 + 458)] + [1.0] * 22)[0] > ALPHA


@pytest.mark.parametrize("method,numerical", [("wasserstein", True), ("psi", True),
                                              ("jensenshannon", False)])
def test_the_null_is_the_noise_floors_own_draws(method, numerical):
    x = pd.Series(np.random.default_rng(1).poisson(4, 800)) if method == "psi" else (
        pd.Series(np.random.default_rng(1).normal(size=800)) if numerical
        else pd.Series(np.random.default_rng(1).choice(list("abcd"), 800)))
    null = null_statistics(method, x, 300, numerical=numerical, rounds=30, seed=3)
    floor = drift_stats.noise_floor(method, x, 300, numerical=numerical, rounds=30,
                                    quantile=0.95, seed=3)
    assert np.quantile(null, 0.95) == pytest.approx(floor, rel=1e-12)


# --- 23 features, 52 weekly checks -------------------------------------------------------------

def population(rng, rows: int, *, shift: float = 0.0) -> pd.DataFrame:
    """15 continuous, 4 discrete (few counts) and 4 categorical features; `shift` moves num_0
    and num_1 by that many standard deviations and tilts cat_0."""
    cols = {}
    for i in range(15):
        kind = i % 3
        x = (rng.normal(size=rows) if kind == 0 else rng.lognormal(0, 0.5, rows) if kind == 1
             else rng.uniform(0, 10, rows))
        cols[f"num_{i}"] = x
    cols["num_0"] = cols["num_0"] + shift
    cols["num_1"] = cols["num_1"] + shift * np.std(cols["num_1"])
    cols["num_5"][rng.random(rows) < 0.05] = np.nan  # a feature with missing values
    for i in range(4):
        cols[f"count_{i}"] = rng.poisson(2 + i, rows)
    for i in range(4):
        levels = [f"l{j}" for j in range(3 + i)]
        w = np.arange(1, len(levels) + 1, dtype=float)
        if i == 0 and shift:
            w[0] *= 1 + 2 * shift
        cols[f"cat_{i}"] = rng.choice(levels, rows, p=w / w.sum())
    return pd.DataFrame(cols)


CATEGORICAL = [f"cat_{i}" for i in range(4)]
METHODS = {**{f"num_{i}": "wasserstein" for i in range(15)},
           **{f"count_{i}": "psi" for i in range(4)},
           **{c: "jensenshannon" for c in CATEGORICAL}}


@pytest.fixture(scope="module")
def reference_and_nulls():
    reference = population(np.random.default_rng(100), REFERENCE_ROWS)
    nulls = null_table(reference, METHODS, BATCH_ROWS, categorical=CATEGORICAL, rounds=ROUNDS,
                       seed=SEED)
    return reference, nulls


def test_corrected_verdict_stays_calm_on_a_year_of_unchanged_weeks(reference_and_nulls):
    reference, nulls = reference_and_nulls
    rng = np.random.default_rng(200)
    alarms = {"uncorrected floor": 0, "floor and threshold 0.1": 0, "holm": 0, "bh": 0}
    flagged_features = 0
    for _ in range(CHECKS):
        tests = feature_tests(reference, population(rng, BATCH_ROWS), METHODS,
                              categorical=CATEGORICAL, nulls=nulls, quantile=1 - ALPHA)
        above = [t for t in tests if t.statistic > t.noise_floor]
        flagged_features += len(above)
        alarms["uncorrected floor"] += bool(above)
        alarms["floor and threshold 0.1"] += any(t.statistic >= 0.1 for t in above)
        p = {t.column: t.pvalue for t in tests}
        for c in ("holm", "bh"):
            alarms[c] += significant_features(p, alpha=ALPHA, correction=c).drifted
    msg = (f"checks with an alarm out of {CHECKS} unchanged weeks: {alarms}; "
           f"features above their 95 % floor: {flagged_features} of {CHECKS * len(METHODS)}")
    assert alarms["uncorrected floor"] >= 20, msg   # about 1 - 0.95**23 = 69 % of checks
    # alpha * 52 = 2.6 expected; 5 is the 95th percentile of Binomial(52, alpha)
    assert alarms["holm"] <= 5 and alarms["bh"] <= 5, msg


def test_a_real_shift_is_flagged(reference_and_nulls):
    reference, nulls = reference_and_nulls
    current = population(np.random.default_rng(300), BATCH_ROWS, shift=0.25)
    tests = feature_tests(reference, current, METHODS, categorical=CATEGORICAL, nulls=nulls,
                          quantile=1 - ALPHA)
    p = {t.column: t.pvalue for t in tests}
    shifted = ["cat_0", "num_0", "num_1"]
    holm_v = significant_features(p, alpha=ALPHA, correction="holm")
    assert holm_v.significant == shifted, (holm_v, p)
    # BH bounds the false share among the flagged, not their number: it may add a bystander
    # once real drift lowers the bar (here count_2, p = 0.008 <= 4/23 * alpha)
    bh_v = significant_features(p, alpha=ALPHA, correction="bh")
    assert set(shifted) <= set(bh_v.significant) and len(bh_v.significant) <= len(shifted) + 1, (
        bh_v, p)


def test_too_few_rounds_cannot_flag_a_lone_drifted_feature():
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(size=1000), rng.normal(1.0, 1.0, 500)  # a 1 sd shift: unmistakable
    p = {f"other_{i}": 1.0 for i in range(22)}
    for rounds, expected in ((99, []), (min_rounds(23, ALPHA), ["x"])):
        null = null_statistics("wasserstein", ref, len(cur), numerical=True, rounds=rounds,
                               seed=SEED)
        p["x"] = bootstrap_pvalue(drift_stats.statistic("wasserstein", ref, cur, numerical=True), null)
        assert significant_features(p, alpha=ALPHA, correction="holm").significant == expected


def test_feature_tests_need_a_null_for_every_feature(reference_and_nulls):
    reference, nulls = reference_and_nulls
    with pytest.raises(ValueError, match="no null statistics for \\['extra'\\]"):
        feature_tests(reference.assign(extra=1.0), reference, {**METHODS, "extra": "wasserstein"},
                      categorical=CATEGORICAL, nulls=nulls, quantile=0.95)
