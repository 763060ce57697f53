"""Replay on real data: does the retrain policy pay, and what does a replay cost?

    python benchmarks/bench_replay.py [--dataset hotel|bike|demo] [--data FILE] [--out DIR]
        [--triggers drift performance] [--every week|month] [--null N] [--onset K] [--streams-only]

hotel: hotel_bookings.parquet (binary `is_canceled`), monthly by arrival date; the columns
known only after the outcome (reservation_status and its date, assigned_room_type,
booking_changes) and the arrival year (a clock, not a feature) are dropped; `agent` and
`company` are ids, read as text. bike: bike_sharing_hour.csv (regression `cnt`), monthly by
`dteday` + `hr`; `casual` and `registered` (they sum to the target) and `instant` (a row id)
are dropped. demo: the simulator's weeks (`simulate.rows_per_week` rows), drifting from the
week after the first champion's window (`--drift-from`, default: right after it), so an onset
stream's shift is known.

`--null N` / `--onset K` add the false-alarm figures (`driftloop replay --null/--onset`);
`--streams-only` trains the first champion only and runs just those streams.

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

from driftloop.cli.monitor import replay_text, streams_text  # noqa: E402
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
    "demo": {"file": None, "target": "default", "time": "event_time", "drop": []},
}


def demo(params, weeks: int, drift_from: int) -> pd.DataFrame:
    """The demo simulator's weeks, concept and covariate drift from `drift_from` on."""
    from datetime import date

    from driftloop.simulate import drift_strength, simulate_week

    sim = params.simulate
    return pd.concat([simulate_week(w, rows=sim.rows_per_week, seed=sim.seed,
                                    start=date.fromisoformat(str(sim.start)),
                                    drift=drift_strength(w, drift_from, sim.drift_ramp_weeks))
                      for w in range(weeks)], ignore_index=True)


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


def floor_seconds(params, df: pd.DataFrame, spec: dict, result: dict, every: str
                  ) -> tuple[float, int]:
    """The trainings the replay needs (the first champion, `always` every period, the policy's
    challengers; a window shared by two strategies is one training), done directly on the
    same windows."""
    p = rp.replay_params(params, df, target=spec["target"], time_col=spec["time"], id_col=None,
                         drop=spec["drop"])
    periods = rp.cut_periods(df.drop(columns=spec["drop"]), spec["time"], every)
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
    ap.add_argument("--every", choices=["week", "month"], default="month")
    ap.add_argument("--initial-periods", type=int, default=6)
    ap.add_argument("--label-delay-periods", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                    help="params.yaml whose train/drift/policy/register settings the replay uses")
    ap.add_argument("--triggers", nargs="+", choices=["drift", "performance"], default=None,
                    help="override policy.triggers (e.g. `performance` for data that drifts "
                         "every period)")
    ap.add_argument("--null", type=int, default=0, help="null periods (false retrains per year)")
    ap.add_argument("--onset", type=int, default=None, help="null periods before the data's own")
    ap.add_argument("--streams-only", action="store_true",
                    help="only the null / onset streams, with the first champion")
    ap.add_argument("--weeks", type=int, default=12, help="demo: weeks simulated")
    ap.add_argument("--drift-from", type=int, default=None, help="demo: first drifted week")
    args = ap.parse_args()
    spec = SETS[args.dataset]
    params = load_params(args.params)
    if args.triggers:
        body = params.model_dump(by_alias=True)
        body["policy"] = {**body["policy"], "triggers": args.triggers}
        params = type(params).model_validate(body)
    print(f"policy.triggers: {params.policy.triggers}")
    if args.dataset == "demo":
        drift_from = args.initial_periods if args.drift_from is None else args.drift_from
        df, every = demo(params, args.weeks, drift_from), "week"
    else:
        path = args.data or DATA / spec["file"]
        if not path.exists():
            sys.exit(f"{path}: not found; pass --data with the {spec['file']} file")
        df, every = load(args.dataset, path), args.every
    kw = dict(target=spec["target"], time_col=spec["time"], every=every,
              initial_periods=args.initial_periods, label_delay=args.label_delay_periods,
              drop=spec["drop"], null_periods=args.null, onset=args.onset)
    t0 = time.perf_counter()
    if args.streams_only:
        result = rp.replay_streams(params, df, **kw)
        print("\n".join(streams_text(result["summary"])))
        print(f"\nstreams {time.perf_counter() - t0:.1f}s; first champion's test "
              f"{result['setup']['metric']} {result['setup']['first_test_metric']:.4f}")
        for stream in result["streams"].values():
            for r in stream["rows"]:
                print(f"  {r['period']}: {r['drift_status']:<9} share {r['drift_share']:.2f} "
                      f"drop {r['drop']:+.3f} {r['action']:<5} {r['drifted_columns']}")
        return
    result = rp.run_replay(params, df, progress=None, **kw)
    seconds = time.perf_counter() - t0
    print(replay_text(result))
    out = args.out or Path(tempfile.mkdtemp(prefix="replay-"))
    for f in rp.write_outputs(result, out):
        print(f"wrote {f}")
    floor, n = floor_seconds(params, df, spec, result, every)
    print(f"\nreplay {seconds:.1f}s for {len(result['periods'])} periods; floor (the same {n} "
          f"trainings with fit_best alone) {floor:.1f}s; ratio {seconds / floor:.2f}")


if __name__ == "__main__":
    main()
