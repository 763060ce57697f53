"""Delayed labels: joined by id, they count for the window their rows were scored in."""

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from driftloop.monitor.labels import newest_measured, window_performance, with_baseline

T0 = datetime(2026, 3, 2)


def week(name: str, start: datetime, n: int, version: str, seed: int, skill: float):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    proba = np.clip(0.5 + skill * (y - 0.5) + rng.normal(0, 0.25, n), 0, 1)
    preds = pd.DataFrame({"id": [f"{name}-{i}" for i in range(n)],
                          "t": [start + timedelta(hours=i) for i in range(n)],
                          "probability": proba, "model_version": version, "batch": name})
    labels = pd.DataFrame({"id": preds["id"], "y": y})
    return preds, labels


def perf(preds, labels, as_of, **kw):
    return window_performance(preds, labels, id_col="id", target="y", time_col="t",
                              version=kw.get("version", "3"), metric="auc",
                              min_labels=kw.get("min_labels", 50), as_of=as_of)


def test_labels_three_days_late_score_the_window_they_belong_to():
    pa, la = week("batch_a", T0, 150, "3", 0, skill=0.6)
    pb, lb = week("batch_b", T0 + timedelta(days=7), 150, "3", 1, skill=0.1)
    preds = pd.concat([pa, pb])
    # both windows' labels arrive in one file, each 3 days after its window ended
    la["labeled_at"] = pa["t"].max() + timedelta(days=3)
    lb["labeled_at"] = pb["t"].max() + timedelta(days=3)
    labels = pd.concat([lb, la]).sample(frac=1, random_state=0)  # order must not matter

    assert perf(preds, labels, as_of=pa["t"].max() + timedelta(days=1)) == []
    (a,) = perf(preds, labels, as_of=pa["t"].max() + timedelta(days=3))
    expected_a = roc_auc_score(la["y"], pa["probability"])
    assert a["window"] == "batch_a" and a["labelled"] == 150
    assert a["value"] == pytest.approx(expected_a)
    assert a["start"] == str(pa["t"].min()) and a["end"] == str(pa["t"].max())

    rows = perf(preds, labels, as_of=pb["t"].max() + timedelta(days=3))
    assert [r["window"] for r in rows] == ["batch_a", "batch_b"]
    assert rows[0]["value"] == pytest.approx(expected_a)  # b's labels did not leak into a
    assert rows[1]["value"] == pytest.approx(roc_auc_score(lb["y"], pb["probability"]))
    assert rows[1]["value"] < rows[0]["value"]


def test_only_the_champions_predictions_and_enough_labels_count():
    pa, la = week("batch_a", T0, 150, "2", 0, skill=0.6)
    pb, lb = week("batch_b", T0, 30, "3", 1, skill=0.6)
    rows = perf(pd.concat([pa, pb]), pd.concat([la, lb]), as_of=None, version="3")
    assert rows == [{**rows[0], "window": "batch_b", "labelled": 30, "value": None}]


def test_threshold_metrics_use_the_models_cut_off_not_one_half():
    # the champion's test f1 was taken at its tuned threshold; live f1 must use the same one
    preds, labels = week("batch_a", T0, 400, "3", 2, skill=0.2)
    kw = dict(id_col="id", target="y", time_col="t", version="3", metric="f1", min_labels=50)
    (at_half,) = window_performance(preds, labels, threshold=0.5, **kw)
    (at_cut,) = window_performance(preds, labels, threshold=0.3, **kw)
    from sklearn.metrics import f1_score

    joined = preds.merge(labels, on="id")
    assert at_cut["value"] == pytest.approx(f1_score(joined["y"], joined["probability"] >= 0.3))
    assert at_half["value"] == pytest.approx(f1_score(joined["y"], joined["probability"] >= 0.5))
    assert at_cut["value"] != pytest.approx(at_half["value"])
    with pytest.raises(ValueError, match="decision threshold"):
        window_performance(preds, labels, **kw)  # f1 without the model's cut-off is refused


def test_each_labelled_window_is_set_against_the_test_figure_and_the_newest_measured_one_counts():
    pa, la = week("batch_a", T0, 150, "3", 0, skill=0.6)
    pb, lb = week("batch_b", T0 + timedelta(days=7), 150, "3", 1, skill=0.1)
    pc, lc = week("batch_c", T0 + timedelta(days=14), 150, "3", 2, skill=0.6)
    rows = [with_baseline(r, 0.9) for r in
            perf(pd.concat([pa, pb, pc]), pd.concat([la, lb, lc.head(20)]), as_of=None)]
    assert [r["window"] for r in rows] == ["batch_a", "batch_b", "batch_c"]
    assert [r["drop"] for r in rows[:2]] == pytest.approx([0.9 - rows[0]["value"], 0.9 - rows[1]["value"]])
    assert rows[1]["drop"] > rows[0]["drop"]  # the weaker week is further below the test figure
    assert rows[2]["value"] is None and rows[2]["drop"] is None  # 20 labels: too few to measure
    assert newest_measured(rows) == rows[1]
    assert with_baseline(rows[0], None)["drop"] is None
    assert newest_measured([rows[2]]) is None and newest_measured([]) is None
