"""Cost of the performance estimate (CBPE) on one batch: `estimate_performance` (expected AUC,
F1, precision, recall and their bootstrap intervals) against a bare sklearn `roc_auc_score`
on the same rows, plus the corrected drift verdict's null for 23 features.

    OMP_NUM_THREADS=1 python benchmarks/bench_estimate.py [--rows N] [--rounds B] [--repeat R]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftloop.monitor.estimate import estimate_performance, fit_calibrator  # noqa: E402
from driftloop.monitor.multitest import null_table  # noqa: E402


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=200, help="bootstrap rounds of the interval")
    ap.add_argument("--reference-rows", type=int, default=4000, help="calibration rows")
    ap.add_argument("--bins", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--null-rounds", type=int, default=499, help="p-value rounds per feature")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(args.seed)
    z = rng.normal(size=args.rows + args.reference_rows)
    score = 1 / (1 + np.exp(-(0.6 * z + 0.4)))
    y = (rng.random(len(z)) < 1 / (1 + np.exp(-z))).astype(int)
    ref, batch = slice(0, args.reference_rows), slice(args.reference_rows, None)
    cal = fit_calibrator(score[ref], y[ref], min_rows=1, bins=args.bins)

    def estimate():
        return estimate_performance(cal, score[batch], threshold=0.5, rounds=args.rounds,
                                    seed=args.seed, confidence=0.95)

    t_est = best_of(args.repeat, estimate)
    t_auc = best_of(args.repeat, lambda: roc_auc_score(y[batch], score[batch]))
    auc = estimate().metrics["auc"]
    print(f"{args.rows} rows, {args.rounds} rounds: estimate {t_est:.3f} s, "
          f"roc_auc_score {t_auc:.4f} s, ratio {t_est / t_auc:.0f}x")
    print(f"  estimated AUC {auc.estimate:.4f} [{auc.low:.4f}, {auc.high:.4f}], "
          f"realized {roc_auc_score(y[batch], score[batch]):.4f}")

    cols = {f"num_{i}": rng.normal(size=2000) for i in range(19)}
    cols.update({f"cat_{i}": rng.choice(list("abcde"), 2000) for i in range(4)})
    frame = pd.DataFrame(cols)
    methods = {c: ("jensenshannon" if c.startswith("cat") else "wasserstein") for c in cols}
    cat = [c for c in cols if c.startswith("cat")]
    t = time.perf_counter()
    null_table(frame, methods, 1500, categorical=cat, rounds=args.null_rounds, seed=args.seed)
    print(f"null table, 23 features x {args.null_rounds} rounds (2000 reference, 1500 batch): "
          f"{time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
