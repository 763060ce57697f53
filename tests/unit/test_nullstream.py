"""False alarms counted: null and onset streams, their figures, and the dataset rule that
keeps many features from crying wolf together."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftloop.cli.monitor import streams_text
from driftloop.monitor import multitest as mt
from driftloop.monitor import nullstream as ns
from driftloop.monitor.drift import ColumnDrift, DriftSummary, decide_drift


def reference(rows: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(rows), "y": np.arange(rows) % 2})


def test_a_null_stream_resamples_the_reference_and_repeats_with_its_seed():
    ref = reference()
    a, b = ns.null_stream(ref, 4, 30, seed=1), ns.null_stream(ref, 4, 30, seed=1)
    assert len(a) == 4 and all(len(f) == 30 for f in a)
    assert all(f.equals(g) for f, g in zip(a, b, strict=True))
    assert not a[0].equals(ns.null_stream(ref, 1, 30, seed=2)[0])
    assert set(pd.concat(a)["x"]) <= set(ref["x"])  # only reference rows
    assert pd.concat(a)["x"].duplicated().any()  # drawn with replacement


def test_an_onset_stream_puts_the_shift_at_index_onset():
    shifted = [reference(5).assign(x=-1), reference(7).assign(x=-2)]
    out = ns.onset_stream(reference(), shifted, onset=3, rows=10, seed=0)
    assert [len(f) for f in out] == [10, 10, 10, 5, 7]
    assert out[3] is shifted[0] and (out[2]["x"] >= 0).all()


@pytest.mark.parametrize("call,match", [
    (lambda: ns.null_stream(reference(), -1, 10, 0), "n_periods >= 0"),
    (lambda: ns.null_stream(reference(0), 1, 10, 0), "no rows"),
    (lambda: ns.onset_stream(reference(), [], onset=2, rows=10, seed=0), "no.*after"),
])
def test_bad_streams_say_what_is_wrong(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_figures_per_year_and_delays():
    assert ns.per_year(1, 52, "week") == pytest.approx(365.25 / 364)
    assert ns.per_year(2, 12, "month") == pytest.approx(2.0)
    assert ns.per_year(0, 0, "week") is None
    assert ns.detection_delay([True, False, False, True], onset=1) == 2  # before onset ignored
    assert ns.detection_delay([False, True], onset=1) == 0
    assert ns.detection_delay([True, False], onset=1) is None
    null = ns.null_figures(["no_drift", "drift", "drift"], ["ok", "wait", "retrain"], "week")
    assert (null["false_drift"], null["false_retrains"]) == (2, 1)
    onset = ns.onset_figures(["drift", "no_drift", "no_drift", "drift"],
                             ["ok", "ok", "ok", "wait"], 2, "week", [0.0, 0.01, 0.04, 0.08])
    assert onset["detection_delay"] == 1 and onset["retrain_delay"] is None
    assert onset["false_drift_before_onset"] == 1
    assert onset["metric_drop_after_onset"] == pytest.approx(0.06)
    text = "\n".join(streams_text({"null": null, "onset": onset}))
    assert "1 false retrain(s)" in text and "drift detected after 1 period(s)" in text
    assert "retrain asked after never" in text


# --- the dataset rule ------------------------------------------------------------------
@pytest.mark.parametrize("rounds,quantile,rate", [
    (20, 0.95, 2 / 21),   # the floor sits between the 19th and 20th of 20 values
    (40, 0.95, 3 / 41),
    (1000, 0.95, 0.05),   # many rounds: the nominal rate (to within its order statistic)
    (0, 0.95, 0.05),      # no floor: the nominal rate
])
def test_a_features_false_rate_follows_its_rounds(rounds, quantile, rate):
    assert mt.feature_false_rate(rounds, quantile) == pytest.approx(rate, abs=1e-3)


def test_the_rate_bounds_how_often_a_fresh_draw_crosses_the_floor():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(20000, 21))  # 20 bootstrap values and one fresh draw, 20000 times
    floors = np.quantile(draws[:, :20], 0.95, axis=1)
    seen = float(np.mean(draws[:, 20] > floors))
    assert 0.07 < seen <= mt.feature_false_rate(20, 0.95) + 0.005  # not the nominal 0.05


@pytest.mark.parametrize("rounds,required", [(20, 7), (40, 6)])
def test_the_binomial_rule_for_the_demo_features(rounds, required):
    rule = mt.dataset_rule(23, correction="binomial", family_alpha=0.01, drift_share=0.25,
                           noise_rounds=rounds, noise_quantile=0.95)
    assert rule.required == required and rule.false_alarm_chance <= 0.01
    looser = mt._binom_tail(23, rule.feature_false_rate, required - 1)
    assert looser > 0.01  # one fewer would be too likely by chance
    assert f"at least {required} of 23" in rule.text()


def test_the_rule_never_asks_for_less_than_drift_share_nor_more_than_every_feature():
    rule = mt.dataset_rule(23, correction="binomial", family_alpha=0.5, drift_share=0.25,
                           noise_rounds=40, noise_quantile=0.95)
    assert rule.required == 6  # ceil(0.25 * 23), though chance alone allows fewer
    one = mt.dataset_rule(1, correction="binomial", family_alpha=0.01, drift_share=0.25,
                          noise_rounds=40, noise_quantile=0.95)
    assert one.required == 1 and one.false_alarm_chance > 0.01  # says how far off it is
    holm = mt.dataset_rule(23, correction="holm", family_alpha=0.05, drift_share=0.25,
                           noise_rounds=40, noise_quantile=0.95)
    assert holm.required == 6 and holm.rounds == mt.min_rounds(23, 0.05) == 459
    with pytest.raises(ValueError, match="drift.correction 'fdr'"):
        mt.dataset_rule(23, correction="fdr", family_alpha=0.05, drift_share=0.25,
                        noise_rounds=40, noise_quantile=0.95)


def test_decide_drift_needs_the_rules_count():
    cols = [ColumnDrift(f"f{i}", "psi", 0.3, 0.1, i < 6) for i in range(23)]
    rule7 = mt.dataset_rule(23, correction="binomial", family_alpha=0.01, drift_share=0.25,
                            noise_rounds=20, noise_quantile=0.95)
    rule6 = mt.dataset_rule(23, correction="binomial", family_alpha=0.01, drift_share=0.25,
                            noise_rounds=40, noise_quantile=0.95)
    s = DriftSummary(6 / 23, 6, cols)
    v = decide_drift(s, rows=1000, min_rows=200, drift_share=0.25, rule=rule7)
    assert v.status == "no_drift" and "at least 7 of 23 needed" in v.reason
    assert decide_drift(s, rows=1000, min_rows=200, drift_share=0.25, rule=rule6).status == "drift"


@pytest.mark.parametrize("seed", range(5))
def test_a_critical_value_is_where_the_bootstrap_pvalue_reaches_the_level(seed):
    rng = np.random.default_rng(seed)
    null = rng.gamma(2, size=199).round(2)  # ties included
    for level in (0.01, 0.05, 0.2):
        s = mt.critical_value(null, level)
        assert mt.bootstrap_pvalue(s, null) <= level
        below = np.nextafter(s, -np.inf)
        assert mt.bootstrap_pvalue(below, null) > level
    assert mt.critical_value(null, 0.001) == np.inf  # 199 rounds cannot reach 1/1000


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_corrected_floors_flag_exactly_the_corrected_features(correction):
    rng = np.random.default_rng(3)
    names = [f"f{i}" for i in range(12)]
    nulls = {c: rng.gamma(2, size=499) for c in names}
    observed = {c: float(np.quantile(nulls[c], q)) for c, q in
                zip(names, [0.999, 0.9995, 0.99, 0.998, *[0.5] * 8], strict=True)}
    pvalues = {c: mt.bootstrap_pvalue(observed[c], nulls[c]) for c in names}
    floors = mt.corrected_floors(pvalues, nulls, alpha=0.05, correction=correction)
    flagged = sorted(c for c in names if observed[c] >= floors[c])
    expected = mt.significant_features(pvalues, alpha=0.05, correction=correction).significant
    assert flagged == expected and flagged  # the same features, and some


def test_the_replay_page_shows_both_figures():
    from driftloop.monitor.page import replay_page

    null = ns.null_figures(["no_drift"] * 52, ["ok"] * 51 + ["retrain"], "week")
    onset = ns.onset_figures(["no_drift", "drift"], ["ok", "wait"], 1, "week", [0.0, 0.07])
    page = replay_page({"periods": [], "summary": {"metric": "auc", "null": null,
                                                    "onset": onset}})
    assert "False alarms and detection delay" in page
    assert "1 (1.00/year)" in page and "0.070" in page
    assert "False alarms" not in replay_page({"periods": [], "summary": {"metric": "auc"}})
