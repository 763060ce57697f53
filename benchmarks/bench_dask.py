"""XGBoost on a 2-worker Dask LocalCluster against in-process training, on the same cores.

    python benchmarks/bench_dask.py [--rows 1000000] [--rounds 100] [--repeats 1] [--workers 2]

Both sides get simulated rows through the pipeline's preprocessing and the same parameters,
with a fixed number of rounds (no early stopping inside the budget):
- in-process: `train_xgboost` (DMatrix, `xgb.train` with `train.xgboost.n_jobs` = workers
  threads), what `train.engine: local` runs;
- dask: `train_xgboost_dask` on a LocalCluster of `--workers` processes x 1 thread (rows
  scattered to the workers, DaskQuantileDMatrix, `xgboost.dask.train`), what
  `train.engine: dask` runs. The cluster's start and close are timed apart, and one small
  warm-up fit first loads XGBoost in the workers.
Prints the median seconds of each, their ratio (goal: dask <= 1.5x in-process) and the load
average, since a shared machine moves both figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train import frames, timed  # noqa: E402
from driftloop.config import load_params  # noqa: E402
from driftloop.learn.dask_engine import dask_client, train_xgboost_dask  # noqa: E402
from driftloop.learn.features import Preprocessor  # noqa: E402
from driftloop.learn.models import Target, train_xgboost  # noqa: E402

VAL_SHARE = 0.1  # val rows per train row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    p = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    train, val = frames(args.rows, VAL_SHARE)
    target = Target.fit("binary", train[p.data.target])
    pre = Preprocessor.fit(train, p.data.numerical, p.data.categorical)
    hp = p.train.xgboost.model_copy(update={"device": "cpu", "n_estimators": args.rounds,
                                            "early_stopping_rounds": args.rounds + 1,
                                            "n_jobs": args.workers})
    dp = p.train.dask.model_copy(update={"address": "", "workers": args.workers,
                                         "threads_per_worker": 1, "memory_limit": "0"})
    print(f"rows: train {len(train):,}, val {len(val):,}; {args.rounds} rounds; median of "
          f"{args.repeats}; load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    local = timed(lambda: train_xgboost(pre, train, val, target, hp, seed=0), args.repeats)
    t0 = time.perf_counter()
    with dask_client(dp) as (client, host):
        started = time.perf_counter() - t0
        small = hp.model_copy(update={"n_estimators": 2})
        train_xgboost_dask(client, pre, train.head(2000), val.head(500), target, small, 0,
                           tracker_host=host)  # warm-up: XGBoost imported in every worker
        dask = timed(lambda: train_xgboost_dask(client, pre, train, val, target, hp, 0,
                                                tracker_host=host), args.repeats)
        t1 = time.perf_counter()
    closed = time.perf_counter() - t1
    print(f"in-process xgb.train ({args.workers} threads): {local:.2f}s")
    print(f"dask LocalCluster ({args.workers} workers x 1 thread): {dask:.2f}s "
          f"(cluster start {started:.2f}s, close {closed:.2f}s, not included)")
    print(f"ratio dask / in-process: {dask / local:.2f} (goal <= 1.5); "
          f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
