"""CBPE on simulated data with a known logistic truth: it follows covariate shift, it is blind
to concept drift (the labelled metric is what catches that), and its formula is exact."""

import itertools

import numpy as np
import pytest

from driftloop.metrics import binary_auc, metric_fn
from driftloop.monitor.estimate import (
    Calibrator,
    decide_estimated_drop,
    estimate_performance,
    expected_auc,
    fit_calibrator,
)

W = np.array([1.2, -0.8, 0.5])  # p(y=1|x) = sigmoid(x @ W + B)
B = -0.5
ROWS = 5000
THRESHOLD = 0.5
KW = {"rounds": 200, "seed": 0, "confidence": 0.95}


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def batch(rng, *, rows=ROWS, scale=(1.0, 1.0, 1.0), shift=(0.0, 0.0, 0.0), w=W):
    """Rows of x, the champion's score and labels drawn from p(y|x) with weights `w`. The
    champion ranks by the true logit but is miscalibrated (too timid, shifted), so the
    calibrator has real work to do."""
    x = rng.normal(size=(rows, 3)) * np.array(scale) + np.array(shift)
    score = sigmoid(0.6 * (x @ W + B) + 0.4)
    y = (rng.random(rows) < sigmoid(x @ np.asarray(w) + B)).astype(int)
    return score, y


@pytest.fixture(scope="module")
def calibrator():
    score, y = batch(np.random.default_rng(1), rows=4000)  # the champion's held-out rows
    return fit_calibrator(score, y, min_rows=500, bins=20)


def realized(score, y):
    return {"auc": binary_auc(y, score),
            **{m: metric_fn("binary", m, THRESHOLD)(y, score) for m in ("f1", "precision", "recall")}}


def test_expected_auc_is_the_exact_expectation_ratio_on_a_tiny_batch():
    s = np.array([0.1, 0.4, 0.4, 0.8, 0.9])  # a tie, to check the half credit
    p = np.array([0.2, 0.3, 0.6, 0.5, 0.9])
    correct = pairs = 0.0
    for y in itertools.product((0, 1), repeat=len(s)):
        w = np.prod(np.where(np.array(y) == 1, p, 1 - p))
        for i, j in itertools.permutations(range(len(s)), 2):
            if y[i] == 1 and y[j] == 0:
                pairs += w
                correct += w * ((s[i] > s[j]) + 0.5 * (s[i] == s[j]))
    assert expected_auc(s, p) == pytest.approx(correct / pairs, rel=1e-12)


def test_covariate_shift_estimate_tracks_the_realized_metrics(calibrator):
    ref_score, ref_y = batch(np.random.default_rng(2))
    score, y = batch(np.random.default_rng(3), scale=(0.5, 1.0, 1.0), shift=(0.8, 0.0, 0.0))
    est = estimate_performance(calibrator, score, threshold=THRESHOLD, **KW)
    real, ref = realized(score, y), realized(ref_score, ref_y)
    assert ref["auc"] - real["auc"] > 0.05, "the shift must move the AUC for this test to mean anything"
    for m in ("auc", "f1", "precision", "recall"):
        e = est.metrics[m]
        assert abs(e.estimate - real[m]) < 0.03, (m, e, real[m])
        assert e.low <= real[m] <= e.high, (m, e, real[m])
    assert est.rows == ROWS and est.calibration.startswith("isotonic")


def test_concept_drift_is_invisible_to_the_estimate_but_not_to_labels(calibrator):
    ref_score, ref_y = batch(np.random.default_rng(2))
    score, y = batch(np.random.default_rng(4), w=(0.2, -0.8, 0.5))  # p(y|x) changed, p(x) not
    est = estimate_performance(calibrator, score, threshold=THRESHOLD, **KW).metrics["auc"]
    ref_auc, real_auc = binary_auc(ref_y, ref_score), binary_auc(y, score)
    assert ref_auc - real_auc > 0.1, (ref_auc, real_auc)    # labels see the decay ...
    assert abs(est.estimate - ref_auc) < 0.03, (est, ref_auc)  # ... the estimate does not
    assert real_auc < est.low, (est, real_auc)


def test_interval_narrows_with_batch_size_down_to_the_calibration_error(calibrator):
    widths = []
    for rows in (300, 3000, 30000):
        score, _ = batch(np.random.default_rng(5), rows=rows)
        e = estimate_performance(calibrator, score, threshold=THRESHOLD, **KW).metrics["auc"]
        assert e.low < e.estimate < e.high
        widths.append(e.high - e.low)
    assert widths[0] > 2 * widths[1], widths  # label noise shrinks like 1/sqrt(rows) ...
    assert widths[2] > 0.015, widths  # ... but 4000 calibration rows stay uncertain


def test_same_seed_same_interval_and_the_calibration_is_monotone(calibrator):
    score, _ = batch(np.random.default_rng(6), rows=1000)
    a = estimate_performance(calibrator, score, threshold=THRESHOLD, **KW)
    assert a == estimate_performance(calibrator, score, threshold=THRESHOLD, **KW)
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(calibrator(grid)) >= 0)


def test_identity_fallback_says_why():
    cal = fit_calibrator([0.2, 0.7, 0.9], [1, 1, 1], min_rows=2, bins=20)
    assert cal.method == "identity" and "one class" in cal.reason
    cal = fit_calibrator([0.2, 0.7], [0, 1], min_rows=100, bins=20)
    assert cal.method == "identity" and "2 reference rows < 100" in cal.reason
    np.testing.assert_allclose(cal([0.3, 0.6]), [0.3, 0.6])
    with pytest.raises(ValueError, match="not probabilities"):
        fit_calibrator([-2.0, 3.0], [0, 1], min_rows=100, bins=20)


@pytest.mark.parametrize("scores,match", [
    ([0.1, np.nan, 0.3], "1 NaN/inf scores \\(first at row 1\\)"),
    ([], "batch scores is empty"),
])
def test_bad_batches_are_named(calibrator, scores, match):
    with pytest.raises(ValueError, match=match):
        estimate_performance(calibrator, scores, threshold=THRESHOLD, **KW)


@pytest.mark.parametrize("scores,labels,match", [
    ([0.1, 0.2, 0.3], [0, 1], "reference scores \\(3\\) and labels \\(2\\) differ in length"),
    ([0.1, 0.2], [0, 2], "labels must be 0/1"),
    ([0.1, np.inf], [0, 1], "reference scores holds 1 NaN/inf"),
])
def test_bad_references_are_named(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        fit_calibrator(scores, labels, min_rows=1, bins=20)


def test_estimated_drop_needs_the_whole_interval_below_the_floor(calibrator):
    score, _ = batch(np.random.default_rng(7), rows=2000)
    est = estimate_performance(calibrator, score, threshold=THRESHOLD, **KW)
    auc = est.metrics["auc"]
    assert not decide_estimated_drop(est, metric="auc", baseline=auc.estimate, max_drop=0.05).dropped
    # a baseline just above high + drop fires; one that puts the floor inside the interval does not
    assert decide_estimated_drop(est, metric="auc", baseline=auc.high + 0.051, max_drop=0.05).dropped
    assert not decide_estimated_drop(est, metric="auc", baseline=auc.estimate + 0.05,
                                     max_drop=0.05).dropped
    with pytest.raises(ValueError, match="no estimate for metric 'log_loss'"):
        decide_estimated_drop(est, metric="log_loss", baseline=0.5, max_drop=0.05)


def test_identity_calibration_still_estimates_from_probabilities():
    rng = np.random.default_rng(8)
    p = rng.beta(2, 3, 4000)  # scores that are true probabilities
    y = (rng.random(len(p)) < p).astype(int)
    cal = fit_calibrator(p[:10], y[:10], min_rows=100, bins=20)
    est = estimate_performance(cal, p, threshold=THRESHOLD, **KW)
    auc = est.metrics["auc"]
    assert est.calibration.startswith("identity") and auc.low <= binary_auc(y, p) <= auc.high
    assert est.to_dict()["metrics"]["auc"]["estimate"] == auc.estimate


def test_a_reference_of_repeated_scores_gives_strictly_increasing_knots():
    rng = np.random.default_rng(9)
    s = np.r_[np.zeros(500), rng.random(500)]  # half the rows share one score
    cal = fit_calibrator(s, (rng.random(1000) < 0.3).astype(int), min_rows=1, bins=20)
    assert np.all(np.diff(cal.knots_x) > 0) and sum(cal.bin_rows) == 1000
    assert cal.bin_rows[0] == 500


def test_calibrator_survives_a_json_round_trip(calibrator):
    import json

    back = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert back == calibrator
