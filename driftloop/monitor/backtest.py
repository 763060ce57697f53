"""backtest: replay batch files through the drift check and the retrain policy, in name order,
as if each arrived in turn; say when a retrain would have been asked for and why.

Works on any table: feature types come from params when its columns match, otherwise they
are inferred from the reference. Nothing is written: the policy state lives in memory. After
a retrain the reference becomes the batches of the streak that caused it (as if the new model
had been trained on them and promoted). The clock is the newest `--time` value of each batch,
or one week per batch without a time column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.config import DriftParams, Params, PolicyParams
from driftloop.contract.suite import parse_times
from driftloop.io import list_batches, read_table
from driftloop.monitor import nullstream as ns
from driftloop.monitor import policy as pol
from driftloop.monitor.batch import BatchError, event_times, feature_frame
from driftloop.monitor.drift import check_frames

_ID_LIKE = 0.5  # text columns with more distinct values than this share of rows are ids


def infer_features(reference: pd.DataFrame, exclude: list[str]) -> tuple[list[str], list[str]]:
    """(numerical, categorical) columns of a table; ids, times and free text are left out."""
    num, cat = [], []
    for c in reference.columns:
        s = reference[c]
        if c in exclude or pd.api.types.is_datetime64_any_dtype(s):
            continue
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            if s.nunique() <= max(_ID_LIKE * len(s), 1):
                cat.append(c)
        else:
            num.append(c)
    return num, cat


def replay(reference: pd.DataFrame, batches: list[tuple[str, pd.DataFrame]], *,
           numerical: list[str], categorical: list[str], dp: DriftParams, policy: PolicyParams,
           time_col: str | None = None, target: str | None = None,
           progress: Callable[[int], None] | None = None) -> dict:
    """{"checks": [...], "retrains": [...]} for batches in the given order (no I/O);
    `progress(1)` after each batch checked, for a caller's progress bar. History is labelled:
    a batch's rows with a `target` value count as its labelled rows for the policy's
    `min_drift_labels` (without `target`, none do)."""
    state, checks, retrains = pol.State(champion="backtest"), [], []
    clock = datetime(2000, 1, 1, tzinfo=UTC)
    streak: dict[str, pd.DataFrame] = {}  # the drifted batches of the current streak
    labelled: dict[str, int] = {}
    for name, df in batches:
        newest = parse_times(df[time_col]).max() if time_col and time_col in df else pd.NaT
        if pd.notna(newest):  # times compared in UTC, as the contract does
            clock = pd.Timestamp(newest).to_pydatetime().replace(tzinfo=UTC)
        else:
            clock = clock + timedelta(weeks=1)
        _, result = check_frames(reference, df, numerical=numerical, categorical=categorical,
                                 dp=dp)
        labelled[name] = int(df[target].notna().sum()) if target and target in df else 0
        decision, state = pol.decide(state, pol.Check(name, result["status"], "backtest",
                                                      labelled=dict(labelled)),
                                     now=clock, policy=policy)
        if result["status"] == "drift":
            streak[name] = df
        elif result["status"] == "no_drift":
            streak = {}
        row = {"batch": name, "at": clock.isoformat(), "rows": result["rows"],
               "status": result["status"], "share": result["share"],
               "drifted_columns": result["drifted_columns"], "reason": result["reason"],
               "action": decision.action, "why": decision.reason}
        checks.append(row)
        if decision.action == "retrain":
            retrains.append({"batch": name, "at": row["at"], "why": decision.reason})
            reference = pd.concat(list(streak.values())[-policy.consecutive_drift:],
                                  ignore_index=True)
            streak = {}
        if progress:
            progress(1)
    return {"checks": checks, "retrains": retrains,
            "policy": {**policy.model_dump(mode="json"), "state": None},
            "features": {"numerical": numerical, "categorical": categorical},
            "final_state": asdict(state)}


def streams(reference: pd.DataFrame, batches: list[tuple[str, pd.DataFrame]], *,
            numerical: list[str], categorical: list[str], dp: DriftParams, policy: PolicyParams,
            target: str | None = None, null_periods: int = 0, onset: int | None = None,
            progress: Callable[[int], None] | None = None) -> dict:
    """False alarms on a null stream of `null_periods` batches resampled from `reference`
    (the median batch's rows each), and detection delay on `onset` such batches followed by
    `batches` (see nullstream). One week per batch, as `replay` counts without a time column."""
    out: dict = {}
    if not null_periods and onset is None:
        return out
    if null_periods < 0 or (onset is not None and onset < 0):
        raise ValueError(f"--null {null_periods} and --onset {onset} must not be negative")
    rows = int(np.median([len(df) for _, df in batches])) if batches else len(reference)

    def run_stream(frames: list[pd.DataFrame], prefix: str) -> dict:
        named = [(f"{prefix}-{i:03d}", f) for i, f in enumerate(frames)]
        return replay(reference, named, numerical=numerical, categorical=categorical, dp=dp,
                      policy=policy, target=target, progress=progress)

    if null_periods:
        got = run_stream(ns.null_stream(reference, null_periods, rows, dp.seed), "null")
        out["null"] = {**ns.null_figures([c["status"] for c in got["checks"]],
                                         [c["action"] for c in got["checks"]], "week"),
                       "rows_per_period": rows, "checks": got["checks"]}
    if onset is not None:
        frames = ns.onset_stream(reference, [df for _, df in batches], onset=onset, rows=rows,
                                 seed=dp.seed + 1)
        got = run_stream(frames, "onset")
        out["onset"] = {**ns.onset_figures([c["status"] for c in got["checks"]],
                                           [c["action"] for c in got["checks"]], onset, "week"),
                        "rows_per_period": rows, "checks": got["checks"]}
    return out


def run(params: Params, reference: Path, batches: Path, *, target: str | None = None,
        id_col: str | None = None, time_col: str | None = None, null_periods: int = 0,
        onset: int | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """`replay` on the files of `batches`; `progress(1)` after each file checked. With
    `null_periods` / `onset`, `streams` too: its figures under "null" / "onset"."""
    ref = read_table(reference)
    files = list_batches(batches)
    if not files:
        raise FileNotFoundError(f"{batches}: no .parquet or .csv batch files; pass the folder "
                                "that holds them with --batches")
    exclude = [c for c in (target, id_col, time_col) if c]
    for c in exclude:
        if c not in ref:
            raise ValueError(f"{reference}: no column {c!r} (given as --target/--id/--time); "
                             f"columns are {list(ref.columns)[:20]}")
    d = params.data
    if all(c in ref for c in d.features):
        num, cat, source = list(d.numerical), list(d.categorical), "params"
    else:
        num, cat = infer_features(ref, exclude)
        source = "inferred from the reference"
    if target and target in [*num, *cat]:
        num, cat = [c for c in num if c != target], [c for c in cat if c != target]
    if not num and not cat:
        raise ValueError(f"{reference}: no feature columns found; pass a table with numeric or "
                         "categorical columns besides --target/--id/--time")
    ref = feature_frame(ref, numerical=num, categorical=cat, source=str(reference))
    frames = []
    for f in files:
        df = read_table(f)
        lacking = [c for c in [*num, *cat] if c not in df]
        if lacking:
            raise BatchError(f"{f}: lacks feature column(s) {lacking} that {reference.name} "
                             "has; every batch needs the reference's columns")
        if time_col and time_col in df:
            event_times(df, time_col, str(f))
        frames.append((f.name, feature_frame(df, numerical=num, categorical=cat, source=str(f))))
    out = replay(ref, frames, numerical=num, categorical=cat, dp=params.drift,
                 policy=params.policy, time_col=time_col, target=target, progress=progress)
    out.update(streams(ref, frames, numerical=num, categorical=cat, dp=params.drift,
                       policy=params.policy, target=target, null_periods=null_periods,
                       onset=onset, progress=progress))
    out["features"]["source"] = source
    out["reference"] = {"file": reference.name, "rows": len(ref)}
    return out
