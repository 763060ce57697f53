import pytest

from driftloop.monitor.drift import ColumnDrift, DriftSummary, decide_drift, parse_report

REPORT = {
    "metrics": [
        {"config": {"type": "evidently:metric_v2:DriftedColumnsCount", "drift_share": 0.3},
         "value": {"count": 1.0, "share": 0.5}},
        {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "income",
                    "method": "Wasserstein distance (normed)", "threshold": 0.1}, "value": 0.38},
        {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "region",
                    "method": "Jensen-Shannon distance", "threshold": 0.1}, "value": 0.02},
    ],
    "tests": [
        {"name": "Share of Drifted Columns: Less 0.300", "status": "FAIL"},
        {"name": "Value Drift for column income", "status": "FAIL"},
        {"name": "Value Drift for column region", "status": "SUCCESS"},
    ],
}


def test_parse_report_reads_share_methods_and_per_column_verdicts():
    s = parse_report(REPORT)
    assert s.share == 0.5 and s.count == 1
    income = next(c for c in s.columns if c.column == "income")
    assert income == ColumnDrift("income", "Wasserstein distance (normed)", 0.38, 0.1, True)
    assert not next(c for c in s.columns if c.column == "region").drifted
    assert s.columns[0].column == "income"  # drifted columns first


def test_parse_report_without_the_preset_metric_is_an_error():
    with pytest.raises(ValueError, match="DriftedColumnsCount"):
        parse_report({"metrics": [], "tests": []})


def summary(share):
    cols = [ColumnDrift("a", "psi", 0.3, 0.1, True), ColumnDrift("b", "psi", 0.0, 0.1, False)]
    return DriftSummary(share, 1, cols)


@pytest.mark.parametrize("share,status", [(0.5, "drift"), (0.3, "drift"), (0.29, "no_drift"),
                                          (0.0, "no_drift")])
def test_decide_drift_threshold(share, status):
    v = decide_drift(summary(share), rows=1000, min_rows=200, drift_share=0.3)
    assert v.status == status


def test_small_batches_are_insufficient_data_whatever_the_drift():
    v = decide_drift(summary(1.0), rows=50, min_rows=200, drift_share=0.3)
    assert v.status == "insufficient_data" and "50 rows" in v.reason


# --- sample-size awareness: effect size must beat the noise floor -------------------------

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from driftloop.monitor import drift_stats  # noqa: E402
from driftloop.monitor.drift import PREDICTION, feature_methods, judge_columns, subsample  # noqa: E402
from tests.helpers import section  # noqa: E402


def test_judge_columns_needs_effect_above_threshold_and_noise_and_counts_missing():
    s = DriftSummary(0.0, 0, [ColumnDrift("a", "wasserstein", 0.3, 0.1, True),
                              ColumnDrift("b", "wasserstein", 0.15, 0.1, True),
                              ColumnDrift("c", "psi", 0.01, 0.1, False),
                              ColumnDrift(PREDICTION, "wasserstein", 0.5, 0.1, True)])
    out = judge_columns(s, floors={"a": 0.2, "b": 0.2}, missing={"c": (0.02, 0.30)},
                        missing_increase=0.1, features=["a", "b", "c"])
    drifted = {c.column: c.drifted for c in out.columns}
    assert drifted == {"a": True, "b": False, "c": True, PREDICTION: True}
    assert out.count == 2 and out.share == pytest.approx(2 / 3)  # prediction not in the share
    assert "missing 2.0% -> 30.0%" in next(c.why for c in out.columns if c.column == "c")


def test_noise_floor_shrinks_with_batch_size():
    ref = pd.Series(np.random.default_rng(0).normal(size=5000))
    floors = [drift_stats.noise_floor("wasserstein", ref, n, numerical=True, rounds=20,
                                      quantile=0.95, seed=0) for n in (100, 1000, 5000)]
    assert floors[0] > floors[1] > floors[2] > 0
    assert floors[0] > 0.1 > floors[2]  # 100 rows: chance alone passes the default threshold


@pytest.mark.parametrize("method,numerical", [("wasserstein", True), ("psi", True),
                                              ("jensenshannon", False), ("psi", False)])
def test_statistics_are_zero_for_identical_samples_and_grow_with_shift(method, numerical):
    rng = np.random.default_rng(1)
    if numerical:
        ref, same, shifted = rng.normal(size=4000), None, rng.normal(0.5, 1, 4000)
    else:
        ref = rng.choice(list("abcd"), 4000, p=[.4, .3, .2, .1])
        shifted = rng.choice(list("abcd"), 4000, p=[.1, .2, .3, .4])
    same = ref.copy()
    assert drift_stats.statistic(method, ref, same, numerical=numerical) == pytest.approx(0, abs=1e-9)
    assert drift_stats.statistic(method, ref, shifted, numerical=numerical) > 0.1


def test_unknown_method_names_the_params_key():
    with pytest.raises(ValueError, match="params.yaml drift"):
        drift_stats.statistic("ks", [1.0, 2.0], [1.0], numerical=True)


def test_feature_methods_by_type_and_seeded_subsample():
    dp = section("drift", drift_share=0.3, min_rows=10, reference_rows=100, seed=0, discrete_values=5)
    df = pd.DataFrame({"x": np.linspace(0, 1, 100), "k": np.arange(100) % 3, "c": ["a", "b"] * 50})
    assert feature_methods(df, ["x", "k"], ["c"], dp) == {"x": "wasserstein", "k": "psi",
                                                          "c": "jensenshannon"}
    a, b = subsample(df, 10, 0), subsample(df, 10, 0)
    assert len(a) == 10 and a.equals(b) and not a.equals(subsample(df, 10, 1))
    assert subsample(df, 1000, 0) is df


@pytest.mark.parametrize("kind", ["continuous", "discrete", "binned", "categorical"])
@pytest.mark.parametrize("method", ["wasserstein", "psi", "jensenshannon"])
def test_bootstrap_from_counts_equals_the_statistic_on_the_drawn_rows(kind, method):
    """The noise floor counts each draw per distinct value instead of handing `statistic`
    the drawn rows: the figures must be the same draws' figures."""
    if kind == "categorical" and method == "wasserstein":
        pytest.skip("wasserstein is for numbers")
    rng = np.random.default_rng(4)
    ref = {"continuous": rng.lognormal(size=900),
           "discrete": rng.integers(0, 6, 900).astype(float),
           "binned": rng.integers(0, 35, 900).astype(float),
           "categorical": rng.choice(list("abcdefg"), 900, p=[.4, .2, .2, .1, .05, .04, .01])}[kind]
    ref = pd.Series(ref, dtype=object if kind == "categorical" else float)
    ref[::97] = None  # missing values are dropped first
    numerical = kind != "categorical"
    fast = drift_stats.bootstrap_statistics(method, ref, 150, numerical=numerical, rounds=25,
                                            seed=7)
    clean, draws = drift_stats._clean(ref).to_numpy(), np.random.default_rng(7)
    slow = [drift_stats.statistic(method, draws.choice(clean, len(clean)),
                                  draws.choice(clean, 150), numerical=numerical)
            for _ in range(25)]
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_a_mostly_missing_columns_floor_is_that_of_its_few_values():
    """94 % of `company` is missing: the batch's 60 values are a small sample, and the floor
    must be a 60-row floor, not a 1000-row one (else chance crosses it every other week)."""
    from driftloop.monitor import multitest
    from driftloop.monitor.drift import feature_floors

    dp = section("drift")
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"company": rng.choice(list("abcdefghij"), 2000).astype(object)})
    cur = pd.DataFrame({"company": rng.choice(list("abcdefghij"), 1000).astype(object)})
    ref.loc[ref.index % 16 != 0, "company"] = None
    cur.loc[cur.index[60:], "company"] = None
    rule = multitest.dataset_rule(1, correction="binomial", family_alpha=0.01, drift_share=0.25,
                                  noise_rounds=dp.noise_rounds, noise_quantile=dp.noise_quantile)
    floor = feature_floors(ref, cur, {"company": "jensenshannon"}, ["company"], dp, rule)
    kw = dict(numerical=False, rounds=dp.noise_rounds, quantile=dp.noise_quantile, seed=dp.seed)
    assert floor["company"] == drift_stats.noise_floor("jensenshannon", ref["company"], 60, **kw)
    assert floor["company"] > 1.3 * drift_stats.noise_floor("jensenshannon", ref["company"], 1000, **kw)
