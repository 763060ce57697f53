"""score: the champion's probabilities for a batch, kept with ids, timestamps and version."""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop import tracking
from driftloop.config import Params, load_params
from driftloop.io import newest_batch, read_table, write_parquet
from driftloop.monitor.batch import BatchError, event_times, feature_frame

log = logging.getLogger(__name__)


def score_frame(model, df: pd.DataFrame, *, id_col: str, time_col: str, numerical: list[str],
                categorical: list[str], version: str, batch: str = "",
                source: str = "the batch") -> pd.DataFrame:
    """Predictions of `model` (a pyfunc returning probabilities) for `df`, keyed by id; `batch`
    names the window, so labels that land later count for it (pipelines/labels.py). A batch
    the model cannot take raises a BatchError naming `source`, the column and the value."""
    x = feature_frame(df, numerical=numerical, categorical=categorical, source=source, text=True)
    times = event_times(df, time_col, source)
    proba = np.asarray(model.predict(x[[*numerical, *categorical]]), dtype="float64")
    return pd.DataFrame({
        id_col: df[id_col].to_numpy(), time_col: times.to_numpy(),
        "probability": proba, "model_version": str(version),
        "scored_at": pd.Timestamp(datetime.now(UTC)).tz_localize(None), "batch": batch,
    })


def run(params: Params, batch: Path | None = None) -> dict:
    batch = Path(batch) if batch else newest_batch(params.path("landing"), params.path("raw"))
    champ = tracking.champion(params)
    model = tracking.load_model(f"models:/{params.project.name}/{champ.version}")
    d = params.data
    df = read_table(batch)
    missing = [c for c in (d.id, d.time, *d.features) if c not in df.columns]
    if missing:
        raise BatchError(f"{batch}: missing columns {missing}; a batch to score must carry "
                         "data.id, data.time and every column of data.numerical and "
                         "data.categorical in params.yaml")
    preds = score_frame(model, df, id_col=d.id, time_col=d.time, numerical=d.numerical,
                        categorical=d.categorical, version=champ.version, batch=batch.stem,
                        source=str(batch))
    out = write_parquet(params.path("predictions") / f"{batch.stem}.parquet", preds)
    result = {"batch": batch.name, "rows": len(preds), "model_version": int(champ.version),
              "mean_probability": float(preds["probability"].mean()), "output": str(out)}
    log.info("scored %s with version %s: %d rows", batch.name, champ.version, len(preds))
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batch", nargs="?", type=Path, help="batch file (default: the newest)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(run(load_params(), args.batch), indent=2))


if __name__ == "__main__":
    main()
