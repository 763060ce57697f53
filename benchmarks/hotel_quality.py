"""Model quality on real data: hotel_bookings.parquet (binary: is_canceled), time-ordered.

    python benchmarks/hotel_quality.py [--data ../shared/data/hotel_bookings.parquet]

Train on the earliest 70 % by arrival date, validate on the next 15 %, test on the latest
15 %. Columns known only after the outcome are dropped (reservation_status and its date)
along with the partly post-booking assigned_room_type and booking_changes. driftloop's train
stage (XGBoost + MLP, early stopping on val, best on val) is compared with a plain
XGBClassifier on default settings fitted on the same train rows, both scored once on test.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from driftloop.config import load_params  # noqa: E402
from driftloop.learn.features import Preprocessor  # noqa: E402
from driftloop.learn.fit import choose_candidate  # noqa: E402
from driftloop.learn.models import Target, predict, train_mlp, train_xgboost  # noqa: E402
from driftloop.metrics import best_f1_threshold, task_metrics  # noqa: E402

LEAKS = ["reservation_status", "reservation_status_date", "assigned_room_type", "booking_changes"]
TARGET = "is_canceled"


def load(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    month = pd.to_datetime(df["arrival_date_month"], format="%B").dt.month
    df["arrival"] = pd.to_datetime(dict(year=df["arrival_date_year"], month=month,
                                        day=df["arrival_date_day_of_month"]))
    df = df.drop(columns=LEAKS).sort_values("arrival", kind="stable").reset_index(drop=True)
    for c in ("agent", "company"):  # ids, not quantities
        df[c] = df[c].astype("Int64").astype("string")
    return df


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/hotel_bookings.parquet")
    args = ap.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data}: not found; pass --data with the hotel_bookings.parquet file")
    df = load(args.data)
    n = len(df)
    train, val, test = df.iloc[:int(.7 * n)], df.iloc[int(.7 * n):int(.85 * n)], df.iloc[int(.85 * n):]
    features = [c for c in df.columns if c not in (TARGET, "arrival")]
    cats = [c for c in features if df[c].dtype == object or str(df[c].dtype) == "string"]
    nums = [c for c in features if c not in cats]
    print(f"train {train['arrival'].min():%Y-%m-%d}..{train['arrival'].max():%Y-%m-%d} ({len(train):,}), "
          f"val ..{val['arrival'].max():%Y-%m-%d} ({len(val):,}), "
          f"test ..{test['arrival'].max():%Y-%m-%d} ({len(test):,}); "
          f"{len(nums)} numeric, {len(cats)} categorical features")

    p = load_params(ROOT / "params.yaml")
    target = Target.fit("binary", train[TARGET])
    pre = Preprocessor.fit(train, nums, cats)
    y_val, y_test = val[TARGET].to_numpy(), test[TARGET].to_numpy()
    fits = {"xgboost": train_xgboost(pre, train, val, target, p.train.xgboost, seed=0),
            "mlp": train_mlp(pre, train, val, target, p.train.mlp, seed=0)}
    val_preds = {k: predict(k, f.model, pre, target, val, f.best_iteration) for k, f in fits.items()}
    val_scores = {k: task_metrics("binary", y_val, v, best_f1_threshold(y_val, v))
                  for k, v in val_preds.items()}
    chosen = choose_candidate(val_scores, "auc")
    f = fits[chosen]
    thr = best_f1_threshold(y_val, predict(chosen, f.model, pre, target, val, f.best_iteration))
    ours = task_metrics("binary", y_test, predict(chosen, f.model, pre, target, test, f.best_iteration), thr)

    import xgboost as xgb

    def plain_frame(d):
        x = d[features].copy()
        x[cats] = x[cats].astype("category")
        return x

    x_tr = plain_frame(train)
    plain = xgb.XGBClassifier(enable_categorical=True, n_jobs=2).fit(x_tr, train[TARGET])
    x_te = plain_frame(test)
    for c in cats:  # the test split's categories, mapped onto the training ones
        x_te[c] = pd.Categorical(x_te[c].astype(object), categories=x_tr[c].cat.categories)
    base = task_metrics("binary", y_test, plain.predict_proba(x_te)[:, 1], 0.5)

    print("\nval AUC: " + ", ".join(f"{k} {v['auc']:.4f}" for k, v in val_scores.items())
          + f" -> chosen {chosen}")
    print(f"\n| test (latest 15 %) | driftloop ({chosen}) | plain XGBoost (defaults) |")
    print("|---|---|---|")
    for m in ("auc", "log_loss", "brier", "f1", "precision", "recall"):
        print(f"| {m} | {ours[m]:.4f} | {base[m]:.4f} |")
    print(f"| threshold | {ours['threshold']:.3f} (best F1 on val) | 0.500 |")
    print(f"\npositive rate: train {train[TARGET].mean():.3f}, test {np.mean(y_test):.3f}")


if __name__ == "__main__":
    main()
