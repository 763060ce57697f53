"""Synthetic credit-default batches: the demo's stand-in for a production feed.

The data is SYNTHETIC. One batch per week; a batch depends only on (seed, week), so
writing weeks 0-9 today and week 10 tomorrow gives the same files as writing 0-10
at once. From `drift_from_week` on, the applicant mix shifts at once (covariate drift) and
the way risk factors map to default moves over `drift_ramp_weeks` weeks (concept drift).
A week's outcomes are known `label_delay_days` after it ends: `write_labels` writes them as
label files (id, target, `labeled_at`), the feed the monitor measures the champion with.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.config import Params, load_params
from driftloop.io import write_parquet
from driftloop.monitor.labels import LABELED_AT

log = logging.getLogger(__name__)
DAYS_PER_WEEK = 7

REGIONS = [f"region_{c}" for c in "ABCDEFGHIJ"]
EMPLOYMENT = ["salaried", "self_employed", "contract", "unemployed", "retired"]
HOME = ["rent", "mortgage", "own", "other"]
PURPOSE = ["debt_consolidation", "home_improvement", "car", "business", "education",
           "medical", "vacation", "other"]
EDUCATION = ["high_school", "bachelor", "master", "doctorate", "other"]
MARITAL = ["single", "married", "divorced", "widowed"]
CHANNEL = ["branch", "web", "mobile", "broker"]
MERCHANTS = [f"mcc_{i:03d}" for i in range(60)]
DEVICE = ["ios", "android", "windows", "other"]


def _probs(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def _z(x: np.ndarray, mean: float, sd: float) -> np.ndarray:
    return (x - mean) / sd


def simulate_week(week: int, *, rows: int, seed: int, start: date, drift: float) -> pd.DataFrame:
    """One weekly batch of `rows` loan applications (pure: same inputs, same frame).

    `drift` is the concept drift's strength, 0 (none) to 1 (full; True counts as 1): the
    applicant mix shifts as soon as it is above 0, the risk factors move in proportion."""
    rng = np.random.default_rng([seed, week])
    s = float(drift)
    shifted = s > 0  # the applicant mix moves at once
    t0 = pd.Timestamp(start) + pd.Timedelta(weeks=week)
    seconds = np.sort(rng.integers(0, 7 * 24 * 3600, size=rows))
    event_time = t0 + pd.to_timedelta(seconds, unit="s")

    region = rng.choice(REGIONS, rows, p=_probs([3, 2, 2, 1.5, 1, 1, 1, .8, .6, .4] if not shifted
                                                 else [1, 1, 2, 1.5, 1, 2, 2, 2, 1.5, 1.5]))
    employment = rng.choice(EMPLOYMENT, rows, p=_probs([60, 15, 12, 6, 7] if not shifted
                                                         else [50, 15, 15, 13, 7]))
    home = rng.choice(HOME, rows, p=_probs([35, 40, 20, 5]))
    purpose = rng.choice(PURPOSE, rows, p=_probs([30, 15, 15, 10, 8, 7, 5, 10]))
    education = rng.choice(EDUCATION, rows, p=_probs([30, 40, 20, 5, 5]))
    marital = rng.choice(MARITAL, rows, p=_probs([40, 45, 12, 3]))
    channel = rng.choice(CHANNEL, rows, p=_probs([30, 40, 20, 10] if not shifted else [10, 30, 50, 10]))
    zipf = 1.0 / np.arange(1, len(MERCHANTS) + 1) ** 0.9
    if shifted:  # popular merchants change: reverse the popularity of the top third
        zipf[:20] = zipf[:20][::-1]
    merchant = rng.choice(MERCHANTS, rows, p=_probs(zipf))
    device = rng.choice(DEVICE, rows, p=_probs([35, 45, 15, 5]))

    age = np.clip(rng.normal(40, 12, rows), 18, 85).round()
    income = np.exp(rng.normal(np.log(55_000 * (0.8 if shifted else 1.0)), 0.5, rows)).round(-1)
    loan_amount = np.clip(np.exp(rng.normal(np.log(15_000), 0.7, rows)), 500, 200_000).round(-1)
    loan_term = rng.choice([12, 24, 36, 48, 60, 72], rows, p=_probs([10, 20, 30, 15, 20, 5]))
    credit_score = np.clip(rng.normal(680 - (35 if shifted else 0), 60, rows), 300, 850).round()
    dti = np.clip(rng.beta(2, 5, rows) * 0.9 + (loan_amount / income) * 0.05, 0, 1.5)
    open_accounts = rng.poisson(5, rows)
    delinquencies = rng.poisson(0.3 if not shifted else 0.5, rows)
    months_employed = np.where(employment == "unemployed", 0,
                               rng.exponential(60, rows).round()).astype(float)
    utilization = rng.beta(2, 3, rows)
    inquiries = rng.poisson(1.2, rows)
    annual_spend = np.exp(rng.normal(np.log(20_000), 0.6, rows)).round(-1)
    savings = np.exp(rng.normal(np.log(8_000), 1.1, rows)).round(-1)
    interest = np.clip(5 + (850 - credit_score) / 30 + rng.normal(0, 1.5, rows), 3, 35).round(2)

    # Concept drift, in proportion to s: debt burden matters 2.5 times as much, the credit
    # score a fifth as much, mobile applicants become riskier and the rare merchants safer.
    b_dti, b_score = 0.8 + 1.2 * s, -1.1 + 0.9 * s
    logit = (
        -2.55 - 0.3 * s
        + b_dti * _z(dti, 0.3, 0.15)
        + b_score * _z(credit_score, 680, 60)
        + 0.55 * delinquencies
        + 0.35 * _z(utilization, 0.4, 0.2)
        + 0.2 * (inquiries - 1.2)
        - 0.3 * _z(np.log(income), np.log(55_000), 0.5)
        + 0.6 * (employment == "unemployed")
        + 0.3 * (channel == "broker") + 1.0 * s * (channel == "mobile")
        + 0.25 * np.isin(purpose, ["business", "vacation"])
        + (0.4 - 0.8 * s) * np.isin(merchant, MERCHANTS[40:])
        - 0.01 * (age - 40)
    )
    target = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")

    df = pd.DataFrame({
        "application_id": [f"A{week:04d}-{i:06d}" for i in range(rows)],
        "event_time": event_time.astype("datetime64[ns]"),
        "age": age, "income": income, "loan_amount": loan_amount,
        "loan_term_months": loan_term.astype(float), "interest_rate": interest,
        "credit_score": credit_score, "debt_to_income": dti.round(4),
        "num_open_accounts": open_accounts.astype(float),
        "num_delinquencies": delinquencies.astype(float),
        "months_employed": months_employed, "credit_utilization": utilization.round(4),
        "num_inquiries_6m": inquiries.astype(float), "annual_spend": annual_spend,
        "savings_balance": savings,
        "region": region, "employment_type": employment, "home_ownership": home,
        "loan_purpose": purpose, "education": education, "marital_status": marital,
        "channel": channel, "merchant_category": merchant, "device_os": device,
        "default": target,
    })
    # Missing values, as a real feed has them (after the target is drawn).
    for col, share in {"income": .05, "months_employed": .08, "credit_score": .03,
                       "savings_balance": .10, "employment_type": .02, "device_os": .04}.items():
        df.loc[rng.random(rows) < share, col] = None
    return df


def drift_strength(week: int, drift_from_week: int | None, ramp_weeks: int) -> float:
    """0 before `drift_from_week`, then rising in equal steps to 1 over `ramp_weeks` weeks."""
    if drift_from_week is None or week < drift_from_week:
        return 0.0
    return min(1.0, (week - drift_from_week + 1) / ramp_weeks)


def labels_due(weeks: list[int], delay_days: float) -> list[int]:
    """The weeks whose labels arrive while `weeks` are written: each week brings the labels
    of the week that ended `delay_days` (rounded up to whole weeks) before it (pure)."""
    lag = math.ceil(delay_days / DAYS_PER_WEEK)
    return sorted({w - lag for w in weeks if w - lag >= 0})


def week_end(start: date, week: int) -> pd.Timestamp:
    return pd.Timestamp(start) + pd.Timedelta(weeks=week + 1)


def batch_name(start: date, week: int) -> str:
    return f"batch_{start + timedelta(weeks=week):%Y-%m-%d}.parquet"


def label_name(start: date, week: int) -> str:
    return "labels_" + batch_name(start, week).removeprefix("batch_")


def _week(params: Params, week: int, drift_from_week: int | None) -> pd.DataFrame:
    sim = params.simulate
    return simulate_week(week, rows=sim.rows_per_week, seed=sim.seed,
                         start=date.fromisoformat(sim.start),
                         drift=drift_strength(week, drift_from_week, sim.drift_ramp_weeks))


def run(params: Params, weeks: list[int], drift_from_week: int | None,
        out_dir: Path | None = None, progress: Callable[[int], None] | None = None, *,
        labelled: bool = True) -> list[Path]:
    """Write one parquet file per week into the landing folder (or `out_dir`); `progress(1)`
    after each, so a caller can show how far along a long run is. `labelled=False` leaves the
    target column out: what arrives to be scored before anyone knows the outcome."""
    sim = params.simulate
    start = date.fromisoformat(sim.start)
    out = Path(out_dir) if out_dir else params.path("landing")
    target = params.data.target
    written = []
    for week in weeks:
        df = _week(params, week, drift_from_week)
        rate = df[target].mean()
        path = write_parquet(out / batch_name(start, week), df if labelled else df.drop(columns=target))
        log.info("wrote %s (%d rows, drift %.2f, default rate %.3f%s)", path.name, len(df),
                 drift_strength(week, drift_from_week, sim.drift_ramp_weeks), rate,
                 "" if labelled else ", target left out")
        written.append(path)
        if progress:
            progress(1)
    return written


def write_labels(params: Params, weeks: list[int], drift_from_week: int | None,
                 out_dir: Path | None = None) -> list[Path]:
    """The label files of `weeks` (id, target and `labeled_at`: the week's end plus
    `simulate.label_delay_days`) into `paths.labels` (or `out_dir`)."""
    sim, d = params.simulate, params.data
    start = date.fromisoformat(sim.start)
    out = Path(out_dir) if out_dir else params.path("labels")
    written = []
    for week in weeks:
        df = _week(params, week, drift_from_week)[[d.id, d.target]]
        df[LABELED_AT] = week_end(start, week) + pd.Timedelta(days=sim.label_delay_days)
        written.append(write_parquet(out / label_name(start, week), df))
        log.info("wrote %s (%d labels)", written[-1].name, len(df))
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first-week", type=int, default=0)
    ap.add_argument("--weeks", type=int, default=None, help="how many weeks (default: params)")
    ap.add_argument("--drift-from", type=int, default=None, help="first drifted week")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--labels", action="store_true",
                    help="also write the label files due by the newest week (paths.labels)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    n = args.weeks or params.simulate.weeks
    drift = args.drift_from if args.drift_from is not None else params.simulate.drift_from_week
    weeks = list(range(args.first_week, args.first_week + n))
    run(params, weeks, drift, args.out)
    if args.labels:
        write_labels(params, labels_due(weeks, params.simulate.label_delay_days), drift)


if __name__ == "__main__":
    main()
