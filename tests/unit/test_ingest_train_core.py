import math

import pandas as pd
import pytest

from driftloop.config import ParamsError, load_params
from driftloop.learn.fit import choose_candidate
from pipelines.ingest import BatchSpan, select_window
from tests.helpers import ROOT


def span(name, first, last):
    return BatchSpan(name, pd.Timestamp(first), pd.Timestamp(last))


def test_window_keeps_batches_inside_the_newest_weeks():
    spans = [span(f"b{i}", f"2026-01-{1 + 7 * i:02d}", f"2026-01-{7 + 7 * i:02d}") for i in range(4)]
    assert select_window(spans, weeks=2) == ["b2", "b3"]
    assert select_window(spans, weeks=10) == ["b0", "b1", "b2", "b3"]
    assert select_window([], weeks=2) == []


def test_choose_candidate_by_auc_or_log_loss():
    scores = {"xgboost": {"auc": 0.81, "log_loss": 0.30}, "mlp": {"auc": 0.83, "log_loss": 0.35}}
    assert choose_candidate(scores, "auc") == "mlp"
    assert choose_candidate(scores, "log_loss") == "xgboost"
    assert choose_candidate({"a": {"auc": math.nan}, "b": {"auc": 0.6}}, "auc") == "b"
    with pytest.raises(ValueError):
        choose_candidate({}, "auc")


def test_params_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text().replace("val_size: 0.15", "val_size: 2")
    bad.write_text(text)
    with pytest.raises(ParamsError, match=r"split\.val_size"):
        load_params(bad)
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "nope.yaml")


def test_a_failed_stage_restores_itself_and_later_stages_but_never_ingest():
    from driftloop.dag import parse_stages, stages_to_restore

    stages = parse_stages({"stages": {
        "ingest": {"cmd": "i", "outs": [{"data/raw": {"persist": True}}, "data/window"]},
        "validate": {"cmd": "v", "outs": ["data/validated"]},
        "train": {"cmd": "t", "outs": ["models/m"], "meta": {"writes_mlflow": True}},
        "register": {"cmd": "r", "metrics": [{"reports/r.json": {"cache": False}}]}}})
    assert [s.writes_mlflow for s in stages] == [False, False, True, False]
    assert stages_to_restore(stages, "validate") == ["validate", "train", "register"]
    assert stages_to_restore(stages, "register") == ["register"]
    assert stages_to_restore(stages, "ingest") == ["validate", "train", "register"]


def test_the_drift_reference_is_the_newest_training_rows_in_time_order():
    from pipelines.train import reference_rows

    times = pd.to_datetime(["2026-01-05", "2026-01-01", "2026-01-03", "2026-01-03", "2026-01-02",
                            "2026-01-04", "2026-01-03"])
    train = pd.DataFrame({"t": times, "x": range(7)}, index=[10, 11, 12, 12, 14, 15, 16])
    ref = reference_rows(train, time_col="t", rows=4)
    assert list(ref["x"]) == [3, 6, 5, 0]  # same times keep their order; duplicate labels fine
    pd.testing.assert_frame_equal(ref, train.sort_values("t", kind="stable").tail(4))
    assert len(reference_rows(train, time_col="t", rows=100)) == 7
