"""Drift check of 1e6 reference rows against 1e5 current rows, as `driftloop drift` runs it:
seeded subsample, noise floors, the dataset rule (`drift.correction`), Evidently, prediction
drift and the performance estimate (CBPE with its bootstrap interval, `estimate:`), versus
the same statistics computed directly with numpy/scipy on every row (effect sizes, missing
shares, the champion-score drift and the point estimate from calibrated probabilities).
Prints both timings, their ratio, the machine's load, and whether the verdicts agree.

    OMP_NUM_THREADS=1 python benchmarks/bench_drift.py [--reference-rows N] [--current-rows N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftloop.config import load_params  # noqa: E402
from driftloop.monitor import drift_stats, multitest  # noqa: E402
from driftloop.monitor.drift import (  # noqa: E402
    PREDICTION,
    DriftSummary,
    check_frames,
    decide_drift,
    feature_methods,
    subsample,
)
from driftloop.monitor.estimate import estimate_performance, fit_calibrator  # noqa: E402
from driftloop.simulate import simulate_week  # noqa: E402

THRESHOLD = 0.5  # the stand-in champion's decision threshold


def frame(rows: int, *, drift: bool, week: int, seed: int) -> pd.DataFrame:
    """`rows` synthetic applications, built from 50k-row weeks to keep generation quick, with
    a stand-in champion's score (a fixed logistic of two risk factors)."""
    parts, left = [], rows
    while left > 0:
        n = min(left, 50_000)
        parts.append(simulate_week(week, rows=n, seed=seed, start=date(2026, 1, 5), drift=drift))
        left, week = left - n, week + 1
    df = pd.concat(parts, ignore_index=True)
    z = (650 - df["credit_score"].fillna(650)) / 60 + 2 * df["debt_to_income"].fillna(0.3) - 1.5
    df[PREDICTION] = 1 / (1 + np.exp(-z.to_numpy(float)))
    return df


def point_estimate(cal, scores: np.ndarray) -> dict[str, float]:
    """CBPE's point estimate in plain numpy: expected AUC by ranks, expected confusion."""
    p = np.clip(cal(scores), 0, 1)
    order = np.argsort(scores, kind="stable")
    s, pp = scores[order], p[order]
    below = np.concatenate(([0.0], np.cumsum(1 - pp)[:-1]))  # ties are rare with these scores
    auc = float(np.sum(pp * below) / (pp.sum() * (1 - pp).sum() - np.sum(pp * (1 - pp))))
    pred = s >= THRESHOLD
    tp, fp, fn = pp[pred].sum(), (1 - pp[pred]).sum(), pp[~pred].sum()
    return {"auc": auc, "f1": float(2 * tp / (2 * tp + fp + fn))}


def direct(reference: pd.DataFrame, current: pd.DataFrame, methods: dict[str, str],
           categorical: list[str], dp) -> tuple[float, list[str]]:
    """The unsampled verdict: every row, numpy/scipy statistics, threshold and missing rule.
    (No noise floor: at these sizes chance cannot reach the threshold.)"""
    drifted = []
    for col, method in methods.items():
        score = drift_stats.statistic(method, reference[col], current[col],
                                      numerical=col not in categorical)
        rise = drift_stats.missing_share(current[col]) - drift_stats.missing_share(reference[col])
        if score >= dp.threshold or rise > dp.missing_increase:
            drifted.append(col)
    drift_stats.statistic("wasserstein", reference[PREDICTION], current[PREDICTION],
                          numerical=True)
    return len(drifted) / len(methods), sorted(drifted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-rows", type=int, default=1_000_000)
    ap.add_argument("--current-rows", type=int, default=100_000)
    args = ap.parse_args()
    p = load_params()
    d, dp, ep = p.data, p.drift, p.estimate
    reference = frame(args.reference_rows, drift=False, week=0, seed=1)
    calibration_rows = subsample(reference, 20_000, 3)  # the champion's test split, say
    cal = fit_calibrator(calibration_rows[PREDICTION], calibration_rows[d.target],
                         min_rows=ep.min_rows, bins=ep.bins)
    rule = multitest.dataset_rule(len(d.features), correction=dp.correction,
                                  family_alpha=dp.family_alpha, drift_share=dp.drift_share,
                                  noise_rounds=dp.noise_rounds, noise_quantile=dp.noise_quantile)
    print(f"reference {len(reference):,} rows, current {args.current_rows:,} rows, "
          f"{len(d.features)} features, max_rows={dp.max_rows}, noise_rounds={dp.noise_rounds}, "
          f"correction={dp.correction} ({rule.text()}), estimate rounds={ep.rounds}")
    ratios = []
    for drift in (False, True):
        current = frame(args.current_rows, drift=drift, week=100, seed=2)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        _, result = check_frames(reference, current, numerical=d.numerical,
                                 categorical=d.categorical, dp=dp)
        scores = subsample(current, dp.max_rows, dp.seed)[PREDICTION].to_numpy()
        est = estimate_performance(cal, scores, threshold=THRESHOLD, rounds=ep.rounds,
                                   seed=ep.seed, confidence=ep.confidence)
        t_check = time.perf_counter() - t0
        t0 = time.perf_counter()
        methods = feature_methods(reference, d.numerical, d.categorical, dp)
        share, drifted = direct(reference, current, methods, d.categorical, dp)
        point = point_estimate(cal, current[PREDICTION].to_numpy())
        t_direct = time.perf_counter() - t0
        full = decide_drift(DriftSummary(share, len(drifted), []), rows=len(current),
                            min_rows=dp.min_rows, drift_share=dp.drift_share, rule=rule)
        same = full.status == result["status"]
        auc = est.metrics["auc"]
        ratios.append(t_check / t_direct)
        print(f"\n{'drifted' if drift else 'clean'} batch (load average {load0:.1f} -> "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
        print(f"  driftloop check + estimate (sampled): {t_check:6.2f} s  -> {result['status']} "
              f"(share {result['share']:.2f}) {result['drifted_columns']}; estimated AUC "
              f"{auc.estimate:.4f} [{auc.low:.4f}, {auc.high:.4f}]")
        print(f"  numpy/scipy on every row:             {t_direct:6.2f} s  -> {full.status} "
              f"(share {share:.2f}) {drifted}; expected AUC {point['auc']:.4f}")
        print(f"  ratio check/direct: {t_check / t_direct:.2f}x; verdict equal: {same}; "
              f"same drifted features: {sorted(result['drifted_columns']) == drifted}")
        assert same, "the sampled verdict differs from the unsampled one"
    print(f"\nratio (worst of the two): {max(ratios):.2f}x (goal: within 3x)")


if __name__ == "__main__":
    main()
