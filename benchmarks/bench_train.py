"""Train-stage overhead against the bare libraries: XGBoost and the MLP.

    python benchmarks/bench_train.py [--rows 200000] [--rounds 200] [--repeats 3]
        [--mlp-epochs 2] [--only xgboost|mlp]

XGBoost: `driftloop.learn.models.train_xgboost` (preprocessing, DMatrix build, training, device
check) vs bare `xgb.train` on the same prepared matrices with the same parameters and a
fixed number of rounds. Prints the median of each and their ratio (goal: <= 1.10).

MLP: samples/s of the train stage's MLP training loop (`train_mlp` with the stage's recency
weights, class weights, per-epoch validation, early-stopping bookkeeping and checkpoint)
vs the floor: a bare torch loop over the same network (same layers, batch size, learning
rate and threads) fed by slicing whole tensors with a permuted index, with `AdamW` at its
defaults, no validation and no checkpoint. Runs alternate, medians are printed, and the
ratio stage / floor (goal: >= 0.90). A second floor with the fused `AdamW` the stage uses
shows what the stage's bookkeeping costs on its own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xgboost as xgb  # noqa: E402

from driftloop.config import MLPParams, load_params  # noqa: E402
from driftloop.learn.devices import cuda_visible  # noqa: E402
from driftloop.learn.features import Preprocessor  # noqa: E402
from driftloop.learn.fit import recency_weights  # noqa: E402
from driftloop.learn.models import (  # noqa: E402
    Target,
    mlp_network,
    train_mlp,
    train_xgboost,
    xgb_params,
)
from driftloop.simulate import simulate_week  # noqa: E402

VAL_SHARE = 0.15 / 0.725  # val rows per train row with the demo's split shares


def frames(rows: int, val_share: float = VAL_SHARE):
    """Simulated training rows (weekly batches of up to 50k) and a later validation week."""
    weekly = 50_000
    parts = [simulate_week(w, rows=min(weekly, rows - w * weekly), seed=1, start=date(2026, 1, 5),
                           drift=False) for w in range((rows + weekly - 1) // weekly)]
    train = pd.concat(parts, ignore_index=True)
    val = simulate_week(99, rows=max(2000, int(rows * val_share)), seed=1, start=date(2026, 1, 5),
                        drift=False)
    return train, val


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_xgboost(p, pre, target, train, val, devices, rounds: int, repeats: int) -> None:
    for device in devices:
        # no early stopping inside the budget: both sides build exactly `rounds` trees
        hp = p.train.xgboost.model_copy(update={"device": device, "n_estimators": rounds,
                                                "early_stopping_rounds": rounds + 1})
        x_tr, x_va = pre.frame(train), pre.frame(val)
        y_tr, y_va = target.encode(train[p.data.target]), target.encode(val[p.data.target])
        bare_params = xgb_params(target, hp, device, seed=0)

        def bare(x_tr=x_tr, y_tr=y_tr, x_va=x_va, y_va=y_va, bare_params=bare_params):
            dtr = xgb.DMatrix(x_tr, label=y_tr, enable_categorical=True)
            dva = xgb.DMatrix(x_va, label=y_va, enable_categorical=True)
            xgb.train(bare_params, dtr, num_boost_round=rounds, evals=[(dva, "val")],
                      early_stopping_rounds=rounds + 1, verbose_eval=False)

        def ours(hp=hp):
            train_xgboost(pre, train, val, target, hp, seed=0)

        timed(bare, 1)  # warm-up
        b, o = timed(bare, repeats), timed(ours, repeats)
        print(f"xgboost [{device}]: bare xgb.train {b:.2f}s, train stage {o:.2f}s, "
              f"ratio {o / b:.3f} (goal <= 1.10)")


def bare_mlp(pre: Preprocessor, x_num: np.ndarray, x_cat: np.ndarray, y: np.ndarray,
             hp: MLPParams, epochs: int, device: str, fused: bool = False) -> float:
    """The floor: samples/s of a plain loop over the same network, whole tensors on the
    device sliced by a permuted index, no validation, weights, clipping or checkpoint."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(hp.threads)
    xn, xc = torch.from_numpy(x_num).to(device), torch.from_numpy(x_cat).to(device)
    yt = torch.from_numpy(y.astype(np.float32)).to(device)
    model = mlp_network(xn.shape[1], pre.cardinalities, 1, hp).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay,
                            fused=fused or None)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(yt), device=device)
        for start in range(0, len(yt), hp.batch_size):
            idx = order[start:start + hp.batch_size]
            if len(idx) < 2:
                continue
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xn[idx], xc[idx]), yt[idx]).backward()
            opt.step()
    sync()
    return epochs * len(yt) / (time.perf_counter() - t0)


def stage_mlp(p, pre, target, train, val, hp: MLPParams, epochs: int) -> float:
    """Samples/s of the stage's loop: `fit_best`'s call of `train_mlp`, with its checkpoint."""
    weights = recency_weights(train[p.data.time], p.train.recency_half_life_days)
    with tempfile.TemporaryDirectory() as tmp:
        fit = train_mlp(pre, train, val, target, hp, p.train.seed, p.train.class_weight,
                        checkpoint=Path(tmp) / "mlp.pt", sample_weight=weights)
    assert len(fit.history["val_score"]) == epochs, "early stopping cut the timed epochs short"
    return epochs * len(train) / fit.seconds


def bench_mlp(p, pre, target, train, val, devices, epochs: int, repeats: int) -> None:
    import torch

    x_num, x_cat = pre.arrays(train)
    y = target.encode(train[p.data.target])
    threads = torch.get_num_threads()
    for device in devices:
        hp = p.train.mlp.model_copy(update={"device": device, "max_epochs": epochs,
                                            "patience": epochs + 1})
        runs: dict[str, list[float]] = {"floor": [], "floor_fused": [], "stage": []}
        bare_mlp(pre, x_num, x_cat, y, hp, 1, device)  # warm-up
        for _ in range(repeats):  # alternate, so a busy spell on the machine hits all three
            runs["floor"].append(bare_mlp(pre, x_num, x_cat, y, hp, epochs, device))
            runs["stage"].append(stage_mlp(p, pre, target, train, val, hp, epochs))
            runs["floor_fused"].append(bare_mlp(pre, x_num, x_cat, y, hp, epochs, device, True))
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"mlp [{device}]: batch {hp.batch_size}, {hp.threads} threads, {epochs} epochs x "
              f"{len(train):,} rows, median of {repeats}")
        print(f"  bare torch loop (AdamW defaults)  {med['floor']:>10,.0f} samples/s")
        print(f"  bare torch loop (AdamW fused)     {med['floor_fused']:>10,.0f} samples/s")
        print(f"  train stage's MLP loop            {med['stage']:>10,.0f} samples/s")
        print(f"  ratio stage / floor {med['stage'] / med['floor']:.3f} (goal >= 0.90); "
              f"stage / fused floor {med['stage'] / med['floor_fused']:.3f}")
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mlp-epochs", type=int, default=2)
    ap.add_argument("--only", choices=["xgboost", "mlp"], default=None)
    args = ap.parse_args(argv)
    p = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    train, val = frames(args.rows)
    target = Target.fit("binary", train[p.data.target])
    pre = Preprocessor.fit(train, p.data.numerical, p.data.categorical)
    devices = ["cpu"] + (["cuda"] if cuda_visible() else [])
    print(f"rows: train {len(train):,}, val {len(val):,}")
    if args.only in (None, "xgboost"):
        print(f"xgboost: {args.rounds} rounds; median of {args.repeats}")
        bench_xgboost(p, pre, target, train, val, devices, args.rounds, args.repeats)
    if args.only in (None, "mlp"):
        bench_mlp(p, pre, target, train, val, devices, args.mlp_epochs, args.repeats)


if __name__ == "__main__":
    main()
