"""batch: a batch file's rows in the types the champion and the drift check take, or one
clear error naming the file, the column, an offending value and its row, and what to do.
Shared by score, drift and backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftloop.contract.suite import parse_times


class BatchError(ValueError):
    """A batch that was read but cannot be checked or scored; the message names the file,
    the column, an offending value and its row, and what to do."""


def _first_bad(source: str, col: str, s: pd.Series, bad: pd.Series, need: str) -> BatchError:
    i = int(np.flatnonzero(bad.to_numpy())[0])
    value = s.iloc[i]
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return BatchError(f"{source}: column {col!r} must hold {need}: row {i} is {shown} "
                      f"({int(bad.sum())} such row(s)); fix the values or send them empty")


def feature_frame(df: pd.DataFrame, *, numerical: list[str], categorical: list[str],
                  source: str = "the batch", text: bool = False) -> pd.DataFrame:
    """`df` with its feature columns in the types the drift check (and the model) take, or a
    BatchError: a missing or twice-named feature column, text in a numerical column. Columns
    that already have the right type are left as they are (so the statistics of a clean
    batch do not change); numbers, flags or mixed values in a categorical column become text,
    as the model's preprocessing reads them. `text=True` asks for the model's input: every
    categorical value text (its schema asks for strings) and no infinities."""
    features = [*numerical, *categorical]
    dups = sorted({c for c in df.columns[df.columns.duplicated()] if c in features})
    missing = [c for c in features if c not in df.columns]
    if dups or missing:
        what = (f"lacks feature column(s) {missing}" if missing else "") + (
            "; " if dups and missing else "") + (f"names column(s) {dups} twice" if dups else "")
        raise BatchError(f"{source}: {what}; a batch must carry every column of "
                         "data.numerical and data.categorical in params.yaml, once each")
    out = df.copy(deep=False)
    for c in numerical:
        s = df[c]
        if pd.api.types.is_bool_dtype(s):
            out[c] = s.astype("float64")
        elif not pd.api.types.is_numeric_dtype(s):
            num = pd.to_numeric(s.astype(object), errors="coerce")
            bad = s.notna().to_numpy() & num.isna().to_numpy()
            if bad.any():
                raise _first_bad(source, c, s, pd.Series(bad), "numbers")
            out[c] = num.astype("float64")
        if text:  # the model takes no infinities (missing values are fine)
            inf = np.isinf(out[c].to_numpy("float64", na_value=np.nan))
            if inf.any():
                raise _first_bad(source, c, s, pd.Series(inf), "finite numbers")
    for c in categorical:
        s = df[c]
        if s.dtype == object:
            mixed = not s.map(lambda v: isinstance(v, str) or _is_missing(v)).all()
        else:
            mixed = pd.api.types.is_datetime64_any_dtype(s)
        if text or mixed:
            out[c] = s.astype(object).map(lambda v: None if _is_missing(v) else str(v))
    return out


def event_times(df: pd.DataFrame, time_col: str, source: str) -> pd.Series:
    """The time column as UTC-naive datetimes (zone-aware times converted, as the contract
    compares them), or a BatchError naming the first value that is not a time."""
    s = df[time_col]
    times = parse_times(s)
    bad = s.notna().to_numpy() & times.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BatchError(f"{source}: column {time_col!r} must hold times: row {i} is "
                         f"{s.iloc[i]!r} ({int(bad.sum())} such row(s)); fix the values "
                         "(ISO 8601, e.g. 2026-01-05T10:00:00Z)")
    return times


def _is_missing(v) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)
