"""labels: the champion's measured performance once true outcomes land, possibly days late.

Label files (`paths.labels`, .parquet or .csv; the demo's come from
`driftloop.simulate.write_labels`) carry the id and the target, optionally a `labeled_at` time.
They are joined to the stored predictions by id, so a label always counts for the window
(prediction batch) its row was scored in, whenever it arrives. Per window: the labelled rows
(what the retrain policy waits for) and the metric against the model's test figure.
"""

from __future__ import annotations

import logging
from datetime import datetime

import pandas as pd

from driftloop.config import Params
from driftloop.io import list_batches, read_table
from driftloop.metrics import metric_fn

log = logging.getLogger(__name__)
LABELED_AT = "labeled_at"


def window_performance(predictions: pd.DataFrame, labels: pd.DataFrame, *, id_col: str,
                       target: str, time_col: str, version: str, metric: str, min_labels: int,
                       threshold: float | None = None, as_of: datetime | None = None) -> list[dict]:
    """Per prediction window (`batch`) scored by model `version`: labelled rows and the metric
    (f1, precision and recall at `threshold`, the cut-off the model's test figures used).
    Labels with `labeled_at` after `as_of` are not known yet (pure)."""
    if as_of is not None and LABELED_AT in labels:
        labels = labels[pd.to_datetime(labels[LABELED_AT]) <= pd.Timestamp(as_of)]
    lab = labels[[id_col, target]].drop_duplicates(subset=id_col, keep="last")
    preds = predictions[predictions["model_version"].astype(str) == str(version)]
    joined = preds.merge(lab, on=id_col, how="inner")
    score = metric_fn("binary", metric, threshold)
    out = []
    for window, g in joined.groupby("batch", sort=True):
        y = g[target].to_numpy()
        row = {"window": window, "labelled": len(g),
               "scored": int((preds["batch"] == window).sum()),
               "start": str(g[time_col].min()), "end": str(g[time_col].max()),
               "metric": metric, "value": None}
        if len(g) >= min_labels:
            row["value"] = score(y, g["probability"].to_numpy())
        out.append(row)
    return out


def load_predictions(params: Params) -> pd.DataFrame:
    frames = []
    for f in list_batches(params.path("predictions")):
        df = read_table(f)
        if "batch" not in df:
            df["batch"] = f.stem
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_labels(params: Params) -> pd.DataFrame:
    d = params.data
    frames = []
    for f in list_batches(params.path("labels")):
        df = read_table(f)
        lacking = [c for c in (d.id, d.target) if c not in df]
        if lacking:
            raise ValueError(f"{f}: label file lacks column(s) {lacking}; a label file needs "
                             f"{d.id!r} and {d.target!r} (and optionally {LABELED_AT!r})")
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def champion_performance(params: Params, *, version: str, metric: str,
                         threshold: float | None = None, as_of: datetime | None = None,
                         baseline: float | None = None) -> list[dict]:
    """Every prediction window of model `version` that has labels, oldest first, with its
    measured metric and, given the model's test figure `baseline`, how far below it that is
    (`drop`): the model's decay, window by window."""
    preds, labels = load_predictions(params), load_labels(params)
    if preds.empty or labels.empty:
        return []
    d = params.data
    rows = window_performance(preds, labels, id_col=d.id, target=d.target, time_col=d.time,
                              version=version, metric=metric, min_labels=params.drift.min_labels,
                              threshold=threshold, as_of=as_of)
    return [with_baseline(r, baseline) for r in rows]


def with_baseline(row: dict, baseline: float | None) -> dict:
    """`row` with the model's test figure and the drop below it, when both are known (pure)."""
    if baseline is None or not measured(row):
        return {**row, "champion_test": baseline, "drop": None}
    return {**row, "champion_test": float(baseline), "drop": float(baseline) - row["value"]}


def measured(row: dict) -> bool:
    return row["value"] is not None and row["value"] == row["value"]


def newest_measured(rows: list[dict]) -> dict | None:
    """The newest window with enough labels for a metric, or None (pure)."""
    done = [r for r in rows if measured(r)]
    return done[-1] if done else None
