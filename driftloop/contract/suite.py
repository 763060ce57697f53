"""Data-contract logic around the Great Expectations suite (pure: frames in, values out).

- `prepare_frame`, `gx_suite`: the dtypes GE should see (categoricals as `category`, a CSV time
  column parsed) and the suite adjusted to them;
- `explain`: which rows broke a failed expectation, with their values (GE's SUMMARY has no rows);
- `leaky_features`: features that predict the target almost perfectly on their own;
- `draft_suite`: a first suite drafted from a reference frame, for a person to review.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

NUMERIC_TYPES = ["float64", "int64", "float32", "int32", "int16", "int8", "uint8", "uint16",
                 "uint32", "uint64", "Float64", "Int64", "Int32"]
STRING_TYPES = ["object", "str", "string"]
DATETIME_TYPES = ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]", "Timestamp"]
# the names a suite uses for the event-time bounds; `time_parameters` gives their values
LATEST, EARLIEST = "latest_event_time", "earliest_event_time"


def time_parameters(now: pd.Timestamp, *, max_age_days: int, clock_skew_minutes: int) -> dict:
    """Values for `{"$PARAMETER": ...}` in a suite: events may not be later than now (plus
    clock skew) nor older than `max_age_days`."""
    now = _utc_bound(now)
    return {LATEST: now + pd.Timedelta(minutes=clock_skew_minutes),
            EARLIEST: now - pd.Timedelta(days=max_age_days)}


def utc_naive(s: pd.Series) -> pd.Series:
    """Times as UTC wall time without a zone. The suite's time bounds are UTC-naive, so an
    aware column (`timestamp[us, UTC]`, or any other zone) is converted, and a naive one is
    taken as UTC already: both compare the same way."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s


def parse_times(s: pd.Series) -> pd.Series:
    """Text times as UTC-naive datetimes (offsets converted, naive text taken as UTC, mixed
    offsets allowed); what does not parse becomes NaT."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return utc_naive(s)
    try:
        parsed = pd.to_datetime(s, errors="coerce", format="mixed", utc=True)
    except (TypeError, ValueError, OverflowError):  # e.g. a flag or a huge text among times
        parsed = pd.to_datetime(s.map(_one_time), utc=True)
    return parsed.dt.tz_localize(None)


def _one_time(v: Any) -> pd.Timestamp:
    try:
        t = pd.Timestamp(v) if not isinstance(v, bool) else pd.NaT
    except (TypeError, ValueError, OverflowError):
        return pd.NaT
    return t if t is pd.NaT or t.tz is not None else t.tz_localize("UTC")


def _utc_bound(v: Any) -> pd.Timestamp | None:
    if v is None:
        return None
    t = pd.Timestamp(v)
    return t.tz_convert("UTC").tz_localize(None) if t.tz is not None else t


def resolve(kwargs: dict, parameters: dict) -> dict:
    return {k: parameters.get(v["$PARAMETER"]) if isinstance(v, dict) and "$PARAMETER" in v else v
            for k, v in kwargs.items()}


def _typed_columns(suite: dict, types: list[str]) -> set[str]:
    return {e["kwargs"]["column"] for e in suite["expectations"]
            if e["type"] == "expect_column_values_to_be_in_type_list"
            and set(e["kwargs"]["type_list"]) & set(types)}


def categorical_text_columns(suite: dict) -> set[str]:
    """Text columns with an allowed set: GE gets them as pandas categoricals (several times
    faster to check, and parquet stores them dictionary-encoded anyway)."""
    in_set = {e["kwargs"]["column"] for e in suite["expectations"]
              if e["type"] == "expect_column_values_to_be_in_set"}
    return in_set & _typed_columns(suite, STRING_TYPES)


def gx_suite(suite: dict) -> dict:
    """The suite as handed to GE: each expectation's position in `suite` kept in its meta
    (`suite_index`), and the type checks of categorical text columns left out: GE cannot
    match a pandas categorical against a type list, so `text_type_errors` checks them."""
    cats = categorical_text_columns(suite)
    out = {k: v for k, v in suite.items() if k != "expectations"}
    out["expectations"] = [
        {**copy.deepcopy(e), "meta": {**(e.get("meta") or {}), "suite_index": i}}
        for i, e in enumerate(suite["expectations"])
        if not (e["type"] == "expect_column_values_to_be_in_type_list"
                and e["kwargs"]["column"] in cats)]
    return out


def text_type_errors(df: pd.DataFrame, suite: dict) -> list[tuple[dict, int, str]]:
    """(expectation, unexpected rows, detail) for each type check of a categorical text column
    that fails: a column of another dtype, or categories that are not text (GE's per-value
    check, done once per distinct value)."""
    out = []
    cats = categorical_text_columns(suite)
    for e in suite["expectations"]:
        col = e["kwargs"].get("column")
        if e["type"] != "expect_column_values_to_be_in_type_list" or col not in cats or col not in df:
            continue
        s = df[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            bad = [c for c in s.cat.categories if not isinstance(c, str)]
            if bad:
                out.append((e, int(s.isin(bad).sum()), "values that are not text in a text column"))
        elif s.dtype == object:
            n = int((s.notna() & s.map(lambda v: not isinstance(v, str))).sum())
            if n:
                out.append((e, n, "values that are not text in a text column"))
        elif s.notna().any() or str(s.dtype) not in e["kwargs"]["type_list"]:
            out.append((e, int(s.notna().sum()), f"column type {s.dtype}, expected text"))
    return out


def prepare_frame(df: pd.DataFrame, suite: dict, categories: bool = True) -> pd.DataFrame:
    """A shallow copy with text columns of categorical sets as `category` (GE checks them
    several times faster), every zone-aware time column as UTC-naive (`utc_naive`) and text
    columns the suite types as datetimes parsed the same way, when every value parses
    (otherwise the type check fails and `explain` names the bad values)."""
    out = df.copy(deep=False)
    for col in categorical_text_columns(suite) if categories else ():
        if col in out and out[col].dtype == object:
            out[col] = out[col].astype("category")
    for col in out.columns[[isinstance(t, pd.DatetimeTZDtype) for t in out.dtypes]]:
        out[col] = utc_naive(out[col])
    for col in _typed_columns(suite, DATETIME_TYPES):
        if col in out and out[col].dtype == object:
            parsed = parse_times(out[col])
            if parsed.notna().sum() == out[col].notna().sum():
                out[col] = parsed
    return out


def _unparseable(s: pd.Series, types: list[str]) -> pd.Series:
    if set(types) & set(NUMERIC_TYPES):
        parsed = pd.to_numeric(s, errors="coerce")
    elif set(types) & set(DATETIME_TYPES):
        parsed = parse_times(s)
    else:  # a text column holding numbers: every value is off-type
        return s.notna() & s.map(lambda v: not isinstance(v, str))
    return s.notna() & parsed.isna()


def unexpected_mask(df: pd.DataFrame, kind: str, kwargs: dict) -> pd.Series | None:
    """Rows that break a column-map expectation (None for table-level ones)."""
    col = kwargs.get("column")
    if col is None or col not in df:
        return None
    s = df[col]
    if kind == "expect_column_values_to_not_be_null":
        return s.isna()
    if kind == "expect_column_values_to_be_unique":
        return s.notna() & s.duplicated(keep=False)
    if kind == "expect_column_values_to_be_in_set":
        return s.notna() & ~s.isin(kwargs["value_set"])
    if kind == "expect_column_values_to_be_in_type_list":
        return _unparseable(s, kwargs["type_list"])
    if kind == "expect_column_values_to_be_between":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        if pd.api.types.is_datetime64_any_dtype(s):  # compared in UTC, whatever the zones
            s, lo, hi = utc_naive(s), _utc_bound(lo), _utc_bound(hi)
        elif not pd.api.types.is_numeric_dtype(s):  # text in a numeric column
            return _unparseable(s, NUMERIC_TYPES)
        bad = pd.Series(False, index=s.index)
        if lo is not None:
            bad |= s < lo
        if hi is not None:
            bad |= s > hi
        return s.notna() & bad
    return None


def explain(df: pd.DataFrame, kind: str, kwargs: dict, limit: int) -> tuple[list[Any], list[int]]:
    """Up to `limit` offending values and their 0-based row numbers in the file."""
    mask = unexpected_mask(df, kind, kwargs)
    if mask is None:
        return [], []
    rows = np.flatnonzero(mask.to_numpy())[:limit]
    return [_plain(v) for v in df[kwargs["column"]].iloc[rows]], [int(r) for r in rows]


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and math.isinf(v):
        return str(v)  # JSON has no inf
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if hasattr(v, "item"):
        return _plain(v.item())
    return v if isinstance(v, (int, float, str, bool)) else str(v)


def binary_target(y: pd.Series) -> pd.Series | None:
    """The target as 0/1 (the larger of two values is 1), or None when it is not binary."""
    values = sorted(y.dropna().unique().tolist(), key=str)
    if len(values) != 2:
        return None
    return (y == values[1]).astype(float).where(y.notna())


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged)."""
    ranks = pd.Series(score).rank().to_numpy()
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return 0.5
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def single_feature_auc(x: pd.Series, y: pd.Series) -> float:
    """How well one column alone separates a 0/1 target, as max(AUC, 1 - AUC).

    Numbers are ranked as they are (missing below every value). Other columns are scored by
    the target rate of their value computed on the other half of the rows, so an id-like column
    scores 0.5 instead of a perfect in-sample fit."""
    keep = y.notna().to_numpy()
    x, yv = x[keep].reset_index(drop=True), y[keep].to_numpy()
    if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
        v = x.astype(float).replace([np.inf, -np.inf], np.nan)
        score = v.fillna(v.min() - 1 if v.notna().any() else 0).to_numpy()
    else:
        codes = pd.factorize(x.astype(str).where(x.notna(), "<missing>"))[0]
        half = np.arange(len(x)) % 2
        score = np.full(len(x), yv.mean())
        for fold in (0, 1):  # each half scored by the target rate of its value in the other
            learn, apply = half != fold, half == fold
            seen = np.bincount(codes[learn], minlength=codes.max() + 1)
            hits = np.bincount(codes[learn], weights=yv[learn], minlength=codes.max() + 1)
            n = seen[codes[apply]]
            score[apply] = np.where(n > 0, hits[codes[apply]] / np.maximum(n, 1), score[apply])
    a = auc(score, yv)
    return max(a, 1 - a)


def leaky_features(df: pd.DataFrame, target: str, columns: list[str], *, max_auc: float,
                   sample_rows: int, seed: int) -> list[tuple[str, float]]:
    """(column, AUC) of each column whose single-feature AUC exceeds `max_auc`."""
    if target not in df or len(df) == 0:
        return []
    if len(df) > sample_rows:
        df = df.sample(sample_rows, random_state=seed)
    y = binary_target(df[target])
    if y is None:
        return []
    scores = [(c, single_feature_auc(df[c], y)) for c in columns if c in df and c != target]
    return sorted(((c, round(a, 4)) for c, a in scores if a > max_auc), key=lambda t: -t[1])


def _expect(kind: str, severity: str, note: str = "", **kwargs) -> dict:
    meta = {"severity": severity, **({"notes": note} if note else {})}
    return {"type": kind, "kwargs": kwargs, "meta": meta}


def _column_kind(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    if pd.api.types.is_numeric_dtype(s):
        return "numeric"
    return "string"


@dataclass(frozen=True)
class DraftRules:
    """How wide a drafted contract is: the heuristics of `contract init`, in one place."""
    margin: float = 0.1             # warn outside the seen range widened by this share of its scale
    error_margin: float = 0.5       # error when more than `unseen_share` rows fall outside this
    unseen_share: float = 0.01      # tolerated share of rows out of range / unseen categories
    max_categories: int = 200       # text columns with more distinct values get no value set
    size_factor: int = 5            # warn on batches this many times smaller or larger
    null_factor: float = 3.0        # error when the null share exceeds this many times the seen
    null_slack: float = 0.25        # ... plus this
    min_non_null: float = 0.01      # the `mostly` of that check never goes below this
    target_classes: int = 20        # a numeric target with at most this many values has classes
    rate_band: float = 0.5          # target rate may move by this share of min(rate, 1 - rate)
    min_rate_band: float = 0.05     # ... and at least this much


DRAFT_RULES = DraftRules()


def draft_suite(df: pd.DataFrame, *, name: str, target: str, id_col: str | None = None,
                time_col: str | None = None, rules: DraftRules = DRAFT_RULES,
                progress: Callable[[int], None] | None = None) -> dict:
    """A first contract for data like `df`, wide enough that a fresh sample of the same data
    passes with warnings at most. Each hard (error) check has a softer warn twin where a
    fresh sample may plausibly differ: new extremes, new categories, more nulls.
    `progress(1)` after each column drafted: a wide or long table takes a while."""
    n, r = len(df), rules
    types = {"numeric": NUMERIC_TYPES, "string": STRING_TYPES, "datetime": DATETIME_TYPES,
             "bool": ["bool", "boolean"]}
    ex = [_expect("expect_table_columns_to_match_set", "error", column_set=list(df.columns),
                  exact_match=True),
          _expect("expect_table_row_count_to_be_between", "error", "a batch has rows",
                  min_value=1, max_value=None),
          _expect("expect_table_row_count_to_be_between", "warn", "unusual batch size",
                  min_value=max(1, n // r.size_factor), max_value=n * r.size_factor)]
    for col in _advancing(df.columns, progress):
        s = df[col]
        if col == time_col and s.dtype == object:
            s = parse_times(s)
        kind = _column_kind(s)
        ex.append(_expect("expect_column_values_to_be_in_type_list", "error", type_list=types[kind],
                          column=col))
        null = float(s.isna().mean()) if n else 0.0
        if col in (target, id_col, time_col) or null == 0:
            ex.append(_expect("expect_column_values_to_not_be_null",
                              "error" if col in (target, id_col, time_col) else "warn", column=col))
        if col not in (target, id_col, time_col):
            ex.append(_expect("expect_column_values_to_not_be_null", "error",
                              f"null share was {null:.3f}; far more means a broken feed",
                              column=col, mostly=round(max(r.min_non_null, 1 - min(1 - r.min_non_null,
                                                                   r.null_factor * null + r.null_slack)),
                                                 4)))
        if col == id_col:
            ex.append(_expect("expect_column_values_to_be_unique", "error", column=col))
            continue
        if col == time_col:
            ex.append(_expect("expect_column_values_to_be_between", "error", "no events from the future",
                              column=col, max_value={"$PARAMETER": LATEST}))
            ex.append(_expect("expect_column_values_to_be_between", "warn",
                              "events older than validate.max_age_days; raise to error once reviewed",
                              column=col, min_value={"$PARAMETER": EARLIEST}))
            continue
        values = s.dropna()
        if kind == "numeric" and len(values) and col != target:
            lo, hi = float(values.min()), float(values.max())
            ex.append(_expect("expect_column_values_to_be_between", "error",
                              f"seen range [{lo}, {hi}] widened by {r.error_margin:.0%} of its scale; "
                              f"more than {r.unseen_share:.0%} of rows outside is an error",
                              column=col, mostly=1 - r.unseen_share, **_band(lo, hi, r.error_margin)))
            ex.append(_expect("expect_column_values_to_be_between", "warn",
                              f"any row outside the seen range widened by {r.margin:.0%}",
                              column=col, **_band(lo, hi, r.margin)))
        elif kind in ("string", "bool") or (col == target and values.nunique() <= r.target_classes):
            cats = sorted(values.unique().tolist(), key=str)
            if len(cats) > r.max_categories:
                continue
            cats = [_plain(c) for c in cats]
            if col == target:
                ex.append(_expect("expect_column_values_to_be_in_set", "error", "target classes",
                                  column=col, value_set=cats))
            else:
                ex.append(_expect("expect_column_values_to_be_in_set", "error",
                                  f"at most {r.unseen_share:.0%} unseen categories", column=col,
                                  value_set=cats, mostly=1 - r.unseen_share))
                ex.append(_expect("expect_column_values_to_be_in_set", "warn", "any unseen category",
                                  column=col, value_set=cats))
        y = binary_target(s) if col == target else None
        if y is not None and pd.api.types.is_numeric_dtype(s):
            rate = float(y.mean())
            half = max(r.min_rate_band, r.rate_band * min(rate, 1 - rate))
            ex.append(_expect("expect_column_mean_to_be_between", "error",
                              f"target rate was {rate:.3f}", column=col,
                              min_value=round(max(0.0, rate - half), 4),
                              max_value=round(min(1.0, rate + half), 4)))
    return {"name": name, "expectations": ex,
            "meta": {"description": f"drafted from {n} rows; review every bound before use",
                     "target": target, "id": id_col, "time": time_col,
                     "severity": "error stops the run, warn is reported only"}}


def _advancing(items: Iterable, progress: Callable[[int], None] | None) -> Iterator:
    """`items`, calling `progress(1)` once the loop is done with each (`continue` included)."""
    for item in items:
        yield item
        if progress:
            progress(1)


def _band(lo: float, hi: float, margin: float) -> dict:
    """[lo, hi] widened by `margin` of the column's scale (so years and codes get room too);
    a column that was never negative stays non-negative."""
    pad = margin * (max(hi - lo, abs(hi), abs(lo)) or 1.0)
    low = lo - pad
    return {"min_value": _round(max(0.0, low) if lo >= 0 else low), "max_value": _round(hi + pad)}


def _round(v: float) -> float:
    return float(f"{v:.6g}")
