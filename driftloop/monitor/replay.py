"""replay: does the retrain policy pay on a dataset? Three strategies over the same periods.

A time-stamped table is cut into periods (weeks or months). The first champion trains on the
first N periods with the project's own training core (`driftloop.learn.fit.fit_best`). Then,
period by period:

- every strategy scores the period with the model it serves, and the realized metric of
  that period is recorded (the policy only *sees* it K periods later, when labels land);
- `policy`: the real drift check (`check_frames`, against the champion's newest training
  rows) and the real retrain policy (`policy.decide`, drift streak or labelled-metric drop);
  on a retrain, a challenger trains on the newest N labelled periods and the real gate
  (`gate.compare` + `gate.decide_promotion`) judges both on labelled rows newer than
  anything the champion trained on;
- `never`: the first champion forever;
- `always`: retrain on the newest N labelled periods every period, promoted without a gate.

Nothing touches Prefect, DVC, MLflow or the project's files; everything stays in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Literal

import numpy as np
import pandas as pd

from driftloop.config import Params
from driftloop.contract.suite import parse_times
from driftloop.gate import compare, decide_promotion
from driftloop.learn.fit import fit_best
from driftloop.learn.models import DriftloopModel, as_matrix
from driftloop.metrics import TASK_METRICS, encode_target, higher_is_better, metric_fn, task_metrics
from driftloop.monitor import nullstream as ns
from driftloop.monitor import policy as pol
from driftloop.monitor.backtest import infer_features
from driftloop.monitor.drift import PREDICTION, check_frames
from driftloop.splitting import split_frame

Every = Literal["week", "month"]
FREQ = {"week": "W", "month": "M"}  # pandas period codes (weeks end on Sunday)
MAX_CLASSES = 20          # an integer target with at most this many values is a class label
STRATEGIES = ("policy", "never", "always")


class ReplayError(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    label: str
    end: pd.Timestamp
    frame: pd.DataFrame


@dataclass
class Served:
    """A model a strategy serves, with what the gate and the drift check need about it."""
    version: int
    model: DriftloopModel
    threshold: float | None
    reference: pd.DataFrame        # its newest training rows, with its own scores
    trained_until: pd.Timestamp    # newest row it trained on (train and val)
    test_metric: float             # on its own held-out newest rows


# ----------------------------------------------------------------------------- pure parts
def infer_task(y: pd.Series) -> str:
    """binary (0/1 or two values), multiclass (text, or few integer values), or regression."""
    values = y.dropna()
    if values.nunique() < 2:
        raise ReplayError(f"target {y.name!r} holds a single value ({values.unique()[:1].tolist()}): "
                          "nothing to learn; pick another target column")
    if pd.api.types.is_bool_dtype(values) or set(values.unique()) <= {0, 1}:
        return "binary"
    integral = pd.api.types.is_integer_dtype(values) or (
        pd.api.types.is_float_dtype(values) and bool(np.all(values == values.round())))
    if not pd.api.types.is_numeric_dtype(values) or (integral and values.nunique() <= MAX_CLASSES):
        return "multiclass"
    return "regression"


def cut_periods(df: pd.DataFrame, time_col: str, every: Every) -> list[Period]:
    """The table in consecutive periods by `time_col`; an empty period in between is an
    error (a feed outage the replay cannot score)."""
    if time_col not in df.columns:
        raise ReplayError(f"no time column {time_col!r}; columns are {list(df.columns)[:20]}")
    t = parse_times(df[time_col]).dt.tz_localize(UTC)  # the contract's UTC rule, zone kept
    bad = t.isna() & df[time_col].notna()
    if bad.any():
        raise ReplayError(f"column {time_col!r}: {int(bad.sum())} value(s) are not times, e.g. "
                          f"{df.loc[bad, time_col].iloc[0]!r}; fix them or pick another --time")
    if t.isna().all():
        raise ReplayError(f"column {time_col!r} holds no times")
    frame = df.assign(**{time_col: t}).dropna(subset=[time_col]).sort_values(time_col, kind="stable")
    keys = frame[time_col].dt.tz_convert(None).dt.to_period(FREQ[every])
    out = []
    for key in pd.period_range(keys.min(), keys.max(), freq=FREQ[every]):
        part = frame[keys == key]
        if part.empty:
            raise ReplayError(f"period {key} has no rows in column {time_col!r}; replay needs "
                              "a row in every period (try --every month)")
        out.append(Period(str(key), key.end_time.floor("s").tz_localize(UTC), part.reset_index(drop=True)))
    return out


def gap_closed(policy: float, never: float, always: float) -> float | None:
    """Share of the never→always difference in mean metric that the policy recovers."""
    gap = always - never
    if not all(map(math.isfinite, (policy, never, always))) or abs(gap) < 1e-12:
        return None
    return (policy - never) / gap


def performance_drop(metric: str, champion: float, realized: float) -> float:
    """How far the realized metric is below the champion's test figure (positive: worse)."""
    return champion - realized if higher_is_better(metric) else realized - champion


# ----------------------------------------------------------------------------- setup
def replay_params(params: Params, df: pd.DataFrame, *, target: str, time_col: str,
                  id_col: str | None, drop: list[str]) -> Params:
    """The project's params for this table: the task follows the target, features come from
    `data:` when the table has them all, else are inferred; the metric is `register.metric`
    when it fits the task, else the task's first metric."""
    for col in [target, time_col, *([id_col] if id_col else []), *drop]:
        if col not in df.columns:
            raise ReplayError(f"no column {col!r} in the data; columns are {list(df.columns)[:30]}")
    task = infer_task(df[target])
    d = params.data
    kept = [c for c in df.columns if c not in drop]
    if all(c in kept for c in d.features):
        numerical, categorical = list(d.numerical), list(d.categorical)
    else:
        numerical, categorical = infer_features(df[kept], [target, time_col, *([id_col] if id_col else [])])
    if not numerical and not categorical:
        raise ReplayError("no feature columns left after --drop and the id/time/target columns")
    metrics = TASK_METRICS[task]
    metric = params.register_.metric if params.register_.metric in metrics else metrics[0]
    body = params.model_dump(by_alias=True)
    body.update(task=task, data={"target": target, "id": id_col or "", "time": time_col,
                                 "numerical": numerical, "categorical": categorical})
    body["policy"] = {**body["policy"], "performance_metric": metric}  # the drop is measured in it
    body["register"] = {**body["register"], "metric": metric,
                        "thresholds": {k: v for k, v in params.register_.thresholds.items() if k in metrics}}
    return Params.model_validate(body)


# ----------------------------------------------------------------------------- the loop
def _scores(model: DriftloopModel, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    return as_matrix(model.predict(None, frame[features]))


def _score_column(pred: np.ndarray) -> np.ndarray:
    """One number per row for prediction drift: P(1), the top class probability, or the value."""
    return pred.max(axis=1) if pred.ndim == 2 else pred


def train_served(p: Params, window: pd.DataFrame, version: int) -> tuple[Served, pd.DataFrame]:
    """Train on a window with the project's split and training core; return the model and its
    held-out test rows (the newest `split.test_size` share, which it never trained on)."""
    d, s = p.data, p.split
    parts = split_frame(window, target=d.target, val_size=s.val_size, test_size=s.test_size,
                        seed=s.seed, method="time", time=d.time, stratify=p.task != "regression")
    trained = fit_best(p, parts["train"], parts["val"])
    test = parts["test"]
    y = encode_target(test[d.target], p.task, trained.target.class_names)
    pred = _scores(trained.model, test, d.features)
    test_metric = metric_fn(p.task, p.register_.metric, trained.threshold)(y, pred)
    seen = pd.concat([parts["train"], parts["val"]])
    ref = seen.sort_values(d.time, kind="stable").tail(p.drift.reference_rows)
    ref = ref.assign(**{PREDICTION: _score_column(_scores(trained.model, ref, d.features))})
    return Served(version, trained.model, trained.threshold, ref, seen[d.time].max(), test_metric), test


def _realized(p: Params, served: Served, frame: pd.DataFrame, label: str) -> tuple[float, np.ndarray]:
    d = p.data
    y = encode_target(frame[d.target], p.task, served.model.target.class_names)
    if p.task == "binary" and len(np.unique(y)) < 2:
        raise ReplayError(f"period {label}: target {d.target!r} has a single class, so "
                          f"{p.register_.metric} is undefined; use longer periods (--every month)")
    pred = _scores(served.model, frame, d.features)
    return metric_fn(p.task, p.register_.metric, served.threshold)(y, pred), pred


def run_replay(params: Params, df: pd.DataFrame, *, target: str, time_col: str,
               id_col: str | None = None, every: Every = "month", initial_periods: int,
               label_delay: int, drop: list[str] = (), null_periods: int = 0,
               onset: int | None = None,
               progress: Callable[[int], None] | None = None) -> dict:
    """{"periods": [...], "summary": {...}} for the three strategies (no I/O). With
    `null_periods` and/or `onset`, the first champion also watches a null stream and an
    onset stream (`run_streams`): their figures join the summary, their rows `streams`."""
    if initial_periods < 1 or label_delay < 0:
        raise ReplayError("--initial-periods must be >= 1 and --label-delay-periods >= 0")
    p = replay_params(params, df, target=target, time_col=time_col, id_col=id_col, drop=list(drop))
    d, metric = p.data, p.register_.metric
    periods = cut_periods(df.drop(columns=list(drop)), time_col, every)
    if len(periods) <= initial_periods:
        raise ReplayError(f"{len(periods)} {every}s of data: more than --initial-periods "
                          f"{initial_periods} are needed to replay anything")

    def window(last: int) -> pd.DataFrame:  # newest N labelled periods, ending at index `last`
        first = max(0, last - initial_periods + 1)
        return pd.concat([q.frame for q in periods[first:last + 1]], ignore_index=True)

    # A window is trained once: the policy's challenger and `always`'s model for the same
    # newest labelled period see the same rows with the same code and seed, so they are the
    # same model (only the version number each strategy gives it differs).
    fitted: dict[int, tuple[Served, pd.DataFrame]] = {}

    def trained(last: int, version: int) -> tuple[Served, pd.DataFrame]:
        if last not in fitted:
            fitted[last] = train_served(p, window(last), version)
        served, test = fitted[last]
        return replace(served, version=version), test

    first, _ = trained(initial_periods - 1, 1)
    serving = {"policy": first, "never": first, "always": first}
    last_trained = {"policy": initial_periods - 1, "always": initial_periods - 1}
    retrains = {s: 0 for s in STRATEGIES}
    promotions = {s: 0 for s in STRATEGIES}
    state = pol.State()
    realized: dict[tuple[str, int], tuple[int, float]] = {}  # (strategy, period) -> (version, value)
    rows = []
    for i in range(initial_periods, len(periods)):
        period = periods[i]
        row: dict = {"period": period.label, "rows": len(period.frame),
                     "serving_version": serving["policy"].version}
        for s in STRATEGIES:
            value, pred = _realized(p, serving[s], period.frame, period.label)
            realized[(s, i)] = (serving[s].version, value)
            row[f"{metric}_{s}"] = value
            if s == "policy":
                current = period.frame.assign(**{PREDICTION: _score_column(pred)})
        champ = serving["policy"]
        _, check = check_frames(champ.reference, current, numerical=d.numerical,
                                categorical=d.categorical, dp=p.drift)
        labelled = i - label_delay  # periods up to here have their labels
        perf_key, perf_drop = None, None
        if labelled >= initial_periods and realized[("policy", labelled)][0] == champ.version:
            perf_key = periods[labelled].label
            perf_drop = performance_drop(metric, champ.test_metric, realized[("policy", labelled)][1])
        decision, state = pol.decide(
            state, pol.Check(key=period.label, status=check["status"], champion=str(champ.version),
                             perf_key=perf_key, perf_drop=perf_drop,
                             labelled={q.label: len(q.frame) for q in periods[:labelled + 1]}),
            now=period.end.to_pydatetime(), policy=p.policy)
        row.update(drift_status=check["status"], drift_share=check["share"],
                   action=decision.action, reason=decision.reason, gate="")
        if decision.action == "retrain" and labelled > last_trained["policy"]:
            retrains["policy"] += 1
            row["gate"] = _challenge(p, serving, trained(labelled, champ.version + 1), champ,
                                     promotions)
            last_trained["policy"] = labelled
        elif decision.action == "retrain":
            row["gate"] = "no labelled period since the champion's training: nothing new to learn"
        if labelled > last_trained["always"]:
            retrains["always"] += 1
            promotions["always"] += 1
            serving["always"], _ = trained(labelled, serving["always"].version + 1)
            last_trained["always"] = labelled
        rows.append(row)
        if progress is not None:
            progress(1)
    summary = _summary(rows, metric, retrains, promotions)
    streams = run_streams(p, first, [q.frame for q in periods[initial_periods:]], every=every,
                          label_delay=label_delay, null_periods=null_periods, onset=onset)
    summary.update({k: {f: v for f, v in s.items() if f != "rows"} for k, s in streams.items()})
    return {"periods": rows, "summary": summary, "streams": streams,
            "setup": {"trainings": len(fitted), "task": p.task, "metric": metric, "every": every,
                      "initial_periods": initial_periods, "label_delay_periods": label_delay,
                      "numerical": d.numerical, "categorical": d.categorical,
                      "first_test_metric": first.test_metric}}


def replay_streams(params: Params, df: pd.DataFrame, *, target: str, time_col: str,
                   id_col: str | None = None, every: Every = "month", initial_periods: int,
                   label_delay: int, drop: list[str] = (), null_periods: int = 0,
                   onset: int | None = None) -> dict:
    """Only the null and onset streams of `run_replay`, with the same first champion: one
    training instead of one per period (no I/O)."""
    if initial_periods < 1 or label_delay < 0:
        raise ReplayError("--initial-periods must be >= 1 and --label-delay-periods >= 0")
    p = replay_params(params, df, target=target, time_col=time_col, id_col=id_col, drop=list(drop))
    periods = cut_periods(df.drop(columns=list(drop)), time_col, every)
    if len(periods) <= initial_periods:
        raise ReplayError(f"{len(periods)} {every}s of data: more than --initial-periods "
                          f"{initial_periods} are needed")
    first, _ = train_served(p, pd.concat([q.frame for q in periods[:initial_periods]],
                                         ignore_index=True), 1)
    streams = run_streams(p, first, [q.frame for q in periods[initial_periods:]], every=every,
                          label_delay=label_delay, null_periods=null_periods, onset=onset)
    summary = {"metric": p.register_.metric,
               **{k: {f: v for f, v in s.items() if f != "rows"} for k, s in streams.items()}}
    return {"summary": summary, "streams": streams,
            "setup": {"task": p.task, "metric": p.register_.metric, "every": every,
                      "initial_periods": initial_periods, "label_delay_periods": label_delay,
                      "first_test_metric": first.test_metric}}


def watch(p: Params, champ: Served, frames: list[pd.DataFrame], *, baselines: list[float],
          start: pd.Timestamp, every: Every, label_delay: int, prefix: str,
          stop_at_retrain_from: int | None = None) -> list[dict]:
    """The real drift check and retrain policy over `frames`, `champ` served throughout: a
    retrain asked for is counted, not done (on a null stream it is a false one). A period's
    labels land `label_delay` periods later; its metric drop is against its baseline. With
    `stop_at_retrain_from`, the watch ends at the first retrain from that period on (a new
    champion would serve after it)."""
    d, metric = p.data, p.register_.metric
    step = pd.Timedelta(days=ns.PERIOD_DAYS[every])
    state, rows, drops = pol.State(), [], []
    for i, frame in enumerate(frames):
        key = f"{prefix}-{i:03d}"
        value, pred = _realized(p, champ, frame, key)
        drops.append(performance_drop(metric, baselines[i], value))
        _, check = check_frames(champ.reference, frame.assign(**{PREDICTION: _score_column(pred)}),
                                numerical=d.numerical, categorical=d.categorical, dp=p.drift)
        labelled = i - label_delay
        decision, state = pol.decide(state, pol.Check(
            key=key, status=check["status"], champion=str(champ.version),
            perf_key=f"{prefix}-{labelled:03d}" if labelled >= 0 else None,
            perf_drop=drops[labelled] if labelled >= 0 else None,
            labelled={f"{prefix}-{j:03d}": len(frames[j]) for j in range(labelled + 1)}),
            now=(start + step * (i + 1)).to_pydatetime(), policy=p.policy)
        rows.append({"period": key, "rows": len(frame), metric: value, "drop": drops[i],
                     "drift_status": check["status"], "drift_share": check["share"],
                     "drifted_columns": check["drifted_columns"], "action": decision.action,
                     "reason": decision.reason})
        if (stop_at_retrain_from is not None and i >= stop_at_retrain_from
                and decision.action == "retrain"):
            break
    return rows


def run_streams(p: Params, champ: Served, later: list[pd.DataFrame], *, every: Every,
                label_delay: int, null_periods: int = 0, onset: int | None = None) -> dict:
    """False alarms and detection delay of the policy with `champ` (see nullstream).
    Null periods are resampled from the champion's drift reference, with the rows of the
    data's median period; their metric drop is measured against the champion's metric on
    that reference (so only sampling error moves it). `later` (the data's periods after the
    champion's window) follows `onset` null periods, until the first retrain after the onset;
    their drop is against its test metric."""
    out: dict = {}
    if not null_periods and onset is None:
        return out
    if null_periods < 0 or (onset is not None and onset < 0):
        raise ReplayError(f"--null {null_periods} and --onset {onset} must not be negative")
    rows = int(np.median([len(f) for f in later])) if later else len(champ.reference)
    pool = champ.reference.drop(columns=[PREDICTION])
    in_sample, _ = _realized(p, champ, pool, "the champion's reference")
    start = champ.trained_until
    if null_periods:
        frames = ns.null_stream(pool, null_periods, rows, p.drift.seed)
        got = watch(p, champ, frames, baselines=[in_sample] * len(frames), start=start,
                    every=every, label_delay=label_delay, prefix="null")
        out["null"] = {**ns.null_figures([r["drift_status"] for r in got],
                                         [r["action"] for r in got], every),
                       "rows_per_period": rows, "rows": got}
    if onset is not None:
        frames = ns.onset_stream(pool, later, onset=onset, rows=rows, seed=p.drift.seed + 1)
        got = watch(p, champ, frames, baselines=[in_sample] * onset
                    + [champ.test_metric] * len(later), start=start, every=every,
                    label_delay=label_delay, prefix="onset", stop_at_retrain_from=onset)
        out["onset"] = {**ns.onset_figures([r["drift_status"] for r in got],
                                           [r["action"] for r in got], onset, every,
                                           [r["drop"] for r in got]),
                        "rows_per_period": rows, "rows": got}
    return out


def _challenge(p: Params, serving: dict[str, Served], candidate: tuple[Served, pd.DataFrame],
               champ: Served, promotions: dict[str, int]) -> str:
    """Let the real gate judge a challenger (and its held-out rows), on labelled rows newer
    than anything the champion trained on (rows neither model has seen)."""
    d = p.data
    challenger, test = candidate
    unseen = test[pd.to_datetime(test[d.time], utc=True) > champ.trained_until]
    if len(unseen) < p.drift.min_labels:
        return (f"kept champion: {len(unseen)} labelled rows newer than the champion's training "
                f"(< drift.min_labels {p.drift.min_labels}) to judge on")
    y = encode_target(unseen[d.target], p.task, challenger.model.target.class_names)
    new, old = (_scores(m.model, unseen, d.features) for m in (challenger, champ))
    ev = compare(p.task, p.register_, p.evaluate, unseen, y, new, old, challenger.threshold)
    mine = {k: v for k, v in task_metrics(p.task, y, new, challenger.threshold).items()
            if isinstance(v, float)}
    decision = decide_promotion(metric=p.register_.metric, challenger=mine,
                                thresholds=p.register_.thresholds, margin=p.register_.margin,
                                champion=ev.champion, bootstrap=ev.bootstrap,
                                slices_regressed=ev.slices_regressed, identical=ev.identical)
    if decision.promote:
        serving["policy"] = challenger
        promotions["policy"] += 1
    verdict = f"promoted v{challenger.version}" if decision.promote else "kept champion"
    return f"{verdict}: {decision.reason}"


def _summary(rows: list[dict], metric: str, retrains: dict, promotions: dict) -> dict:
    means = {s: float(np.nanmean([r[f"{metric}_{s}"] for r in rows])) for s in STRATEGIES}
    out = {s: {"mean_metric": means[s], "retrains": retrains[s], "promotions": promotions[s]}
           for s in STRATEGIES}
    out["metric"] = metric
    out["gap_closed"] = gap_closed(means["policy"], means["never"], means["always"])
    return out


# ----------------------------------------------------------------------------- I/O edge
def write_outputs(result: dict, folder) -> list:
    """`replay.csv` (the table), `replay.png` (the metric per period for the three strategies),
    `summary.json` and `monitoring.html` (the same page a drift check keeps, for the replay:
    readable offline) in `folder`, each written atomically."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from driftloop.io import write_csv, write_json, write_png, write_text
    from driftloop.monitor.page import replay_page

    folder = Path(folder)
    table = pd.DataFrame(result["periods"])
    csv = write_csv(folder / "replay.csv", table)
    metric = result["summary"]["metric"]
    fig, ax = plt.subplots(figsize=(9, 4))
    for s in STRATEGIES:
        ax.plot(table["period"], table[f"{metric}_{s}"], marker="o", markersize=3,
                label=f"{s} (mean {result['summary'][s]['mean_metric']:.4f})")
    promoted = table[table["gate"].str.startswith("promoted")]
    for period in promoted["period"]:
        ax.axvline(period, color="grey", linewidth=0.6, linestyle=":")
    ax.set_ylabel(f"realized {metric}")
    ax.set_title("replay: retrain policy vs never vs always (dotted: promotions)")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = write_png(folder / "replay.png", fig)
    plt.close(fig)
    return [csv, png, write_json(folder / "summary.json",
                                 {"summary": result["summary"], "setup": result["setup"]}),
            write_text(folder / "monitoring.html", replay_page(result))]
