import pytest

from pipelines.drift import ColumnDrift, DriftSummary, decide_drift, parse_report

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
