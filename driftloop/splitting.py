"""Train / val / test splits: the core the `split` stage and `driftloop replay` share."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


def split_frame(df: pd.DataFrame, *, target: str, val_size: float, test_size: float,
                seed: int, method: str, time: str | None, stratify: bool,
                ) -> dict[str, pd.DataFrame]:
    """Train / val / test; the same seed gives the same rows in each split (pure).

    method "stratified": all three are stratified random samples.
    method "time": test is the newest `test_size` share by `time` (rows no earlier model has
    seen, so a champion and a challenger can be compared fairly); train and val are a
    random split of the older rows. `stratify` keeps the target's class shares in each split
    (classification only: a regression target has no classes).
    """
    return {name: _take(df, rows) for name, rows in split_rows(
        df, target=target, val_size=val_size, test_size=test_size, seed=seed, method=method,
        time=time, stratify=stratify).items()}


def split_rows(df: pd.DataFrame, *, target: str, val_size: float, test_size: float, seed: int,
               method: str, time: str | None, stratify: bool) -> dict[str, np.ndarray]:
    """The row positions of each split, in the order `split_frame` returns the rows (pure).

    The draw is scikit-learn's `train_test_split` on the positions, with the target column's
    values as strata, so only positions and one column are copied, never the frame. `df`
    needs only the target and time columns.
    """
    if val_size + test_size >= 1:
        raise ValueError(f"split.val_size + split.test_size must be < 1, got {val_size} + "
                         f"{test_size}; lower them in params.yaml")
    if method == "time" and (time is None or time not in df.columns):
        raise ValueError(f"split.method=time needs the time column {time!r} in the data; "
                         "set data.time in params.yaml, or use split.method: stratified")
    y = df[target] if stratify else None
    if method == "time":
        # the order of a stable sort of the frame by `time` (missing times last, as pandas)
        ordered = df[time].reset_index(drop=True).sort_values(kind="stable").index.to_numpy()
        n_test = max(1, round(len(df) * test_size))
        rest, test = ordered[:-n_test], ordered[-n_test:]
    else:
        rest, test = train_test_split(np.arange(len(df)), test_size=test_size,
                                      random_state=seed, stratify=y)
    train, val = train_test_split(rest, test_size=val_size / (1 - test_size), random_state=seed,
                                  stratify=None if y is None else y.iloc[rest])
    return {"train": train, "val": val, "test": test}


def _take(df: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The rows at `rows`, copied once, with a fresh 0..n-1 index."""
    part = df.take(rows)
    part.index = pd.RangeIndex(len(part))
    return part
