"""Train / val / test splits: the core the `split` stage and `driftloop replay` share."""

from __future__ import annotations

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
    by = (lambda frame: frame[target]) if stratify else (lambda frame: None)
    if val_size + test_size >= 1:
        raise ValueError(f"split.val_size + split.test_size must be < 1, got {val_size} + "
                         f"{test_size}; lower them in params.yaml")
    if method == "time":
        if time is None or time not in df.columns:
            raise ValueError(f"split.method=time needs the time column {time!r} in the data; "
                             "set data.time in params.yaml, or use split.method: stratified")
        ordered = df.sort_values([time], kind="stable")
        n_test = max(1, round(len(df) * test_size))
        rest, test = ordered.iloc[:-n_test], ordered.iloc[-n_test:]
    else:
        rest, test = train_test_split(df, test_size=test_size, random_state=seed,
                                      stratify=by(df))
    train, val = train_test_split(rest, test_size=val_size / (1 - test_size), random_state=seed,
                                  stratify=by(rest))
    return {"train": train.reset_index(drop=True), "val": val.reset_index(drop=True),
            "test": test.reset_index(drop=True)}
