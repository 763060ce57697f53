"""Train-stage overhead against bare xgb.train, and MLP throughput.

    python benchmarks/bench_train.py [--rows 200000] [--rounds 200] [--repeats 3]

XGBoost: `driftloop.learn.models.train_xgboost` (preprocessing, DMatrix build, training, device
check) vs bare `xgb.train` on the same prepared matrices with the same parameters and a
fixed number of rounds. Prints the median of each and their ratio (goal: <= 1.10).
MLP: samples per second of `train_mlp` on CPU (and CUDA when visible).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import xgboost as xgb  # noqa: E402

from driftloop.config import load_params  # noqa: E402
from driftloop.learn.devices import cuda_visible  # noqa: E402
from driftloop.learn.features import Preprocessor  # noqa: E402
from driftloop.learn.models import Target, train_mlp, train_xgboost, xgb_params  # noqa: E402
from driftloop.simulate import simulate_week  # noqa: E402


def frames(rows: int):
    weekly = 50_000
    parts = [simulate_week(w, rows=min(weekly, rows - w * weekly), seed=1, start=date(2026, 1, 5),
                           drift=False) for w in range((rows + weekly - 1) // weekly)]
    train = pd.concat(parts, ignore_index=True)
    val = simulate_week(99, rows=max(2000, rows // 10), seed=1, start=date(2026, 1, 5), drift=False)
    return train, val


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mlp-epochs", type=int, default=3)
    args = ap.parse_args()
    p = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    train, val = frames(args.rows)
    target = Target.fit("binary", train[p.data.target])
    pre = Preprocessor.fit(train, p.data.numerical, p.data.categorical)
    devices = ["cpu"] + (["cuda"] if cuda_visible() else [])
    print(f"rows: train {len(train):,}, val {len(val):,}; {args.rounds} rounds; median of "
          f"{args.repeats}")
    for device in devices:
        # no early stopping inside the budget: both sides build exactly `rounds` trees
        hp = p.train.xgboost.model_copy(update={"device": device, "n_estimators": args.rounds,
                                                "early_stopping_rounds": args.rounds + 1})
        x_tr, x_va = pre.frame(train), pre.frame(val)
        y_tr, y_va = target.encode(train[p.data.target]), target.encode(val[p.data.target])
        bare_params = xgb_params(target, hp, device, seed=0)

        def bare(x_tr=x_tr, y_tr=y_tr, x_va=x_va, y_va=y_va, bare_params=bare_params):
            dtr = xgb.DMatrix(x_tr, label=y_tr, enable_categorical=True)
            dva = xgb.DMatrix(x_va, label=y_va, enable_categorical=True)
            xgb.train(bare_params, dtr, num_boost_round=args.rounds, evals=[(dva, "val")],
                      early_stopping_rounds=args.rounds + 1, verbose_eval=False)

        def ours(hp=hp):
            train_xgboost(pre, train, val, target, hp, seed=0)

        timed(bare, 1)  # warm-up
        b, o = timed(bare, args.repeats), timed(ours, args.repeats)
        print(f"xgboost [{device}]: bare xgb.train {b:.2f}s, train stage {o:.2f}s, "
              f"ratio {o / b:.3f} (goal <= 1.10)")

    for device in devices:
        hp = p.train.mlp.model_copy(update={"device": device, "max_epochs": args.mlp_epochs,
                                            "patience": args.mlp_epochs + 1})
        fit = train_mlp(pre, train, val, target, hp, seed=0)
        epochs = len(fit.history["val_score"])
        print(f"mlp [{device}]: {epochs} epochs in {fit.seconds:.2f}s, "
              f"{epochs * len(train) / fit.seconds:,.0f} samples/s")


if __name__ == "__main__":
    main()
