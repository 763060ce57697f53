"""The noise floor and the p-values are only meaningful if `drift_stats.statistic` is the very
number Evidently reports: checked for every method and column kind in use, both through a
Report of ValueDrift metrics and through the DataDriftPreset path `check_frames` takes."""

import numpy as np
import pandas as pd
import pytest

from driftloop.monitor import drift_stats
from driftloop.monitor.drift import PREDICTION, check_frames, feature_methods
from tests.helpers import section

REL = 1e-9
REFERENCE_ROWS, CURRENT_ROWS = 3000, 2000


def frame(rng, rows: int, *, shift: float, levels: list[str]) -> pd.DataFrame:
    """Every column kind the drift check meets: continuous floats with NaN and inf, integers
    with many values, a discrete count, string and integer categories (with missing values,
    and `levels` differing between reference and current, so PSI's zero fill runs), scores."""
    cont = rng.normal(shift, 1.0, rows)
    cont[rng.random(rows) < 0.05] = np.nan
    cont[:3] = [np.inf, -np.inf, np.nan]
    cat = rng.choice(["a", "b", "c", "d", "rare"], rows, p=[0.4, 0.3, 0.2, 0.099, 0.001]).astype(object)
    cat[rng.random(rows) < 0.03] = None
    return pd.DataFrame({
        "cont": cont,
        "cont_int": rng.integers(0, 60 + int(10 * shift), rows),
        "count": rng.poisson(3 + shift, rows),
        "cat": cat,
        "cat_int": rng.choice([1, 2, 3, 7], rows, p=[0.5, 0.3, 0.15, 0.05]),
        "cat_gap": rng.choice(levels, rows),
        PREDICTION: np.clip(rng.beta(2, 5, rows) + 0.05 * shift, 0, 1),
    })


NUMERICAL = ["cont", "cont_int", "count", PREDICTION]
CATEGORICAL = ["cat", "cat_int", "cat_gap"]
CASES = [(c, m) for c in NUMERICAL for m in ("wasserstein", "psi", "jensenshannon")] + [
    (c, m) for c in CATEGORICAL for m in ("psi", "jensenshannon")]


@pytest.fixture(scope="module", params=[0.0, 0.3], ids=["same", "shifted"])
def frames(request):
    rng = np.random.default_rng(7)
    return (frame(rng, REFERENCE_ROWS, shift=0.0, levels=["x", "y", "gone"]),
            frame(rng, CURRENT_ROWS, shift=request.param, levels=["x", "y", "new"]))


@pytest.fixture(scope="module")
def evidently_values(frames):
    """One Report with a ValueDrift per (column, method), as drift.py builds them."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    ref, cur = frames
    dd = DataDefinition(numerical_columns=NUMERICAL, categorical_columns=CATEGORICAL)
    metrics = [ValueDrift(column=c, method=m, threshold=0.1) for c, m in CASES]
    snap = Report(metrics).run(current_data=Dataset.from_pandas(cur, data_definition=dd),
                               reference_data=Dataset.from_pandas(ref, data_definition=dd))
    return {(m["config"]["column"], m["config"]["method"]): float(m["value"])
            for m in snap.dict()["metrics"]}


@pytest.mark.parametrize("column,method", CASES)
def test_statistic_equals_evidentlys_value_drift(frames, evidently_values, column, method):
    ref, cur = frames
    ours = drift_stats.statistic(method, ref[column], cur[column],
                                 numerical=column not in CATEGORICAL)
    assert ours == pytest.approx(evidently_values[(column, method)], rel=REL, abs=1e-12), (
        column, method)


def test_check_frames_scores_are_drift_stats_statistics(frames):
    """The production path: DataDriftPreset with per-column methods, parsed by parse_report."""
    ref, cur = frames
    dp = section("drift", noise_rounds=0)
    features = [c for c in NUMERICAL if c != PREDICTION]
    _, result = check_frames(ref, cur, numerical=features, categorical=CATEGORICAL, dp=dp)
    methods = feature_methods(ref, features, CATEGORICAL, dp)
    assert methods["count"] == dp.discrete_method and methods["cont"] == dp.num_method
    scores = {c["column"]: c["score"] for c in result["columns"]}
    scores[PREDICTION] = result["prediction_drift"]["score"]
    assert set(scores) == {*features, *CATEGORICAL, PREDICTION}
    for column, method in {**methods, PREDICTION: "wasserstein"}.items():
        ours = drift_stats.statistic(method, ref[column], cur[column],
                                     numerical=column not in CATEGORICAL)
        assert ours == pytest.approx(scores[column], rel=REL, abs=1e-12), (column, method)
