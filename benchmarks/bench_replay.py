"""Replay on real data: does the retrain policy pay, and what does a replay cost?

    python benchmarks/bench_replay.py [--dataset hotel|bike] [--data FILE] [--out DIR]
        [--triggers drift performance]

hotel: hotel_bookings.parquet (binary `is_canceled`), monthly by arrival date; the columns
known only after the outcome (reservation_status and its date, assigned_room_type,
booking_changes) and the arrival year (a clock, not a feature) are dropped; `agent` and
`company` are ids, read as text. bike: bike_sharing_hour.csv (regression `cnt`), monthly by
`dteday` + `hr`; `casual` and `registered` (they sum to the target) and `instant` (a row id)
are dropped.

Prints the replay's table and summary (`driftloop replay`, the demo params.yaml), its wall
time, and the floor: the same number of trainings done directly with the training core
(`fit_best`) on the same windows, with no drift check, policy, gate or scoring; the ratio
is replay time / floor time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from driftloop.cli.monitor import replay_text  # noqa: E402
from driftloop.config import load_params  # noqa: E402
from driftloop.learn.fit import fit_best  # noqa: E402
from driftloop.monitor import replay as rp  # noqa: E402
from driftloop.splitting import split_frame  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = {
    "hotel": {"file": "hotel_bookings.parquet", "target": "is_canceled", "time": "arrival",
              "drop": ["reservation_status", "reservation_status_date", "assigned_room_type",
                       "booking_changes", "arrival_date_year"]},
    "bike": {"file": "bike_sharing_hour.csv", "target": "cnt", "time": "when",
             "drop": ["casual", "registered", "instant", "dteday", "yr"]},
}


def load(name: str, path: Path) -> pd.DataFrame:
    if name == "hotel":
        df = pd.read_parquet(path)
        month = pd.to_datetime(df["arrival_date_month"], format="%B").dt.month
        df["arrival"] = pd.to_datetime(dict(year=df["arrival_date_year"], month=month,
                                            day=df["arrival_date_day_of_month"]))
        for c in ("agent", "company"):  # ids, not quantities
            df[c] = df[c].astype("Int64").astype("string")
        return df
    df = pd.read_csv(path)
    df["when"] = pd.to_datetime(df["dteday"]) + pd.to_timedelta(df["hr"], unit="h")
    return df


def floor_seconds(params, df: pd.DataFrame, spec: dict, result: dict) -> tuple[float, int]:
    """The trainings the replay needs (the first champion, `always` every period, the policy's
    challengers; a window shared by two strategies is one training), done directly on the
    same windows."""
    p = rp.replay_params(params, df, target=spec["target"], time_col=spec["time"], id_col=None,
                         drop=spec["drop"])
    periods = rp.cut_periods(df.drop(columns=spec["drop"]), spec["time"], "month")
    n0 = result["setup"]["initial_periods"]
    delay = result["setup"]["label_delay_periods"]
    rows = result["periods"]
    always = [n0 + k - delay for k in range(len(rows)) if n0 + k - delay > n0 - 1]
    policy = [n0 + k - delay for k, r in enumerate(rows)
              if r["action"] == "retrain" and not r["gate"].startswith("no labelled")]
    ends = sorted({n0 - 1, *always, *policy})  # each distinct training window once
    t0 = time.perf_counter()
    for end in ends:
        window = pd.concat([q.frame for q in periods[max(0, end - n0 + 1):end + 1]], ignore_index=True)
        parts = split_frame(window, target=p.data.target, val_size=p.split.val_size,
                            test_size=p.split.test_size, seed=p.split.seed, method="time",
                            time=p.data.time, stratify=p.task != "regression")
        fit_best(p, parts["train"], parts["val"])
    return time.perf_counter() - t0, len(ends)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", choices=sorted(SETS), default="hotel")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--initial-periods", type=int, default=6)
    ap.add_argument("--label-delay-periods", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                    help="params.yaml whose train/drift/policy/register settings the replay uses")
    ap.add_argument("--triggers", nargs="+", choices=["drift", "performance"], default=None,
                    help="override policy.triggers (e.g. `performance` for data that drifts "
                         "every period)")
    args = ap.parse_args()
    spec = SETS[args.dataset]
    path = args.data or DATA / spec["file"]
    if not path.exists():
        sys.exit(f"{path}: not found; pass --data with the {spec['file']} file")
    params = load_params(args.params)
    if args.triggers:
        body = params.model_dump(by_alias=True)
        body["policy"] = {**body["policy"], "triggers": args.triggers}
        params = type(params).model_validate(body)
    print(f"policy.triggers: {params.policy.triggers}")
    df = load(args.dataset, path)
    t0 = time.perf_counter()
    result = rp.run_replay(params, df, target=spec["target"], time_col=spec["time"], every="month",
                           initial_periods=args.initial_periods,
                           label_delay=args.label_delay_periods, drop=spec["drop"])
    seconds = time.perf_counter() - t0
    print(replay_text(result))
    out = args.out or Path(tempfile.mkdtemp(prefix="replay-"))
    for f in rp.write_outputs(result, out):
        print(f"wrote {f}")
    floor, n = floor_seconds(params, df, spec, result)
    print(f"\nreplay {seconds:.1f}s for {len(result['periods'])} periods; floor (the same {n} "
          f"trainings with fit_best alone) {floor:.1f}s; ratio {seconds / floor:.2f}")


if __name__ == "__main__":
    main()
