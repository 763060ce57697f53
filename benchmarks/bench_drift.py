"""Drift check of 1e6 reference rows against 1e5 current rows: driftloop's check (seeded
subsample, Evidently, noise floor) versus the same statistics computed directly with
numpy/scipy on every row. Prints both timings, their ratio, and whether the verdicts agree.

    OMP_NUM_THREADS=1 python benchmarks/bench_drift.py [--reference-rows N] [--current-rows N]
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import pandas as pd

from driftloop.config import load_params
from driftloop.monitor import drift_stats
from driftloop.monitor.drift import DriftSummary, check_frames, decide_drift, feature_methods
from driftloop.simulate import simulate_week


def frame(rows: int, *, drift: bool, week: int, seed: int) -> pd.DataFrame:
    """`rows` synthetic applications, built from 50k-row weeks to keep generation quick."""
    parts, left = [], rows
    while left > 0:
        n = min(left, 50_000)
        parts.append(simulate_week(week, rows=n, seed=seed, start=date(2026, 1, 5), drift=drift))
        left, week = left - n, week + 1
    return pd.concat(parts, ignore_index=True)


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
    return len(drifted) / len(methods), sorted(drifted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-rows", type=int, default=1_000_000)
    ap.add_argument("--current-rows", type=int, default=100_000)
    args = ap.parse_args()
    p = load_params()
    d, dp = p.data, p.drift
    reference = frame(args.reference_rows, drift=False, week=0, seed=1)
    print(f"reference {len(reference):,} rows, current {args.current_rows:,} rows, "
          f"{len(d.features)} features, max_rows={dp.max_rows}")
    for drift in (False, True):
        current = frame(args.current_rows, drift=drift, week=100, seed=2)
        t0 = time.perf_counter()
        _, result = check_frames(reference, current, numerical=d.numerical,
                                 categorical=d.categorical, dp=dp)
        t_check = time.perf_counter() - t0
        t0 = time.perf_counter()
        methods = feature_methods(reference, d.numerical, d.categorical, dp)
        share, drifted = direct(reference, current, methods, d.categorical, dp)
        t_direct = time.perf_counter() - t0
        full = decide_drift(DriftSummary(share, len(drifted), []), rows=len(current),
                            min_rows=dp.min_rows, drift_share=dp.drift_share)
        same = full.status == result["status"]
        print(f"\n{'drifted' if drift else 'clean'} batch:")
        print(f"  driftloop check (sampled, Evidently): {t_check:6.2f} s  -> {result['status']} "
              f"(share {result['share']:.2f}) {result['drifted_columns']}")
        print(f"  numpy/scipy on every row:             {t_direct:6.2f} s  -> {full.status} "
              f"(share {share:.2f}) {drifted}")
        print(f"  ratio check/direct: {t_check / t_direct:.2f}x; verdict equal: {same}; "
              f"same drifted features: {sorted(result['drifted_columns']) == drifted}")
        assert same, "the sampled verdict differs from the unsampled one"


if __name__ == "__main__":
    main()
