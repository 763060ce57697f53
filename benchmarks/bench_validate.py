"""Time the validate stage on 1e6 rows x 30 columns against the same checks in plain pandas.

    python benchmarks/bench_validate.py [--rows 1000000] [--batches 10] [--workers 0]

Builds a temporary project (the demo suite plus 4 extra numeric columns, row-count bounds
raised to the batch size), times `pipelines.validate.run(params)` with imports done before
the clock starts, then the same checks written directly in pandas, and prints the ratio.
The stage runs cold (empty validate cache) and warm (every batch known but the newest, as in
a weekly run), interleaved with the pandas version so all see the same machine load.
Goals: cold within 2x plain pandas; warm (9 of 10 batches known) at most 0.3x cold.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXTRA = [f"extra_{i}" for i in range(4)]


def make_project(folder: Path, rows: int, batches: int, workers: int = 0) -> None:
    import yaml

    from driftloop.simulate import simulate_week

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["validate"]["workers"] = workers
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    suite = json.loads((ROOT / "expectations/demo.json").read_text())
    per = rows // batches
    for e in suite["expectations"]:
        if e["type"] == "expect_table_row_count_to_be_between":
            e["kwargs"].update(min_value=1, max_value=per * 2)
        if e["type"] == "expect_table_columns_to_match_set":
            e["kwargs"]["column_set"] += EXTRA
    for col in EXTRA:
        suite["expectations"] += [
            {"type": "expect_column_values_to_be_in_type_list", "meta": {"severity": "error"},
             "kwargs": {"column": col, "type_list": ["float64"]}},
            {"type": "expect_column_values_to_be_between", "meta": {"severity": "error"},
             "kwargs": {"column": col, "min_value": -10, "max_value": 10}},
            {"type": "expect_column_values_to_not_be_null", "meta": {"severity": "error"},
             "kwargs": {"column": col, "mostly": 0.95}}]
    (folder / "expectations").mkdir()
    (folder / "expectations/demo.json").write_text(json.dumps(suite))
    window = folder / "data/interim/window"
    window.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for w in range(batches):
        df = simulate_week(w, rows=per, seed=7, start=date(2026, 1, 5), drift=False)
        for col in EXTRA:
            df[col] = rng.normal(0, 1, per)
        df.to_parquet(window / f"batch_{w:03d}.parquet", index=False)


def pandas_checks(df: pd.DataFrame, suite: dict, params: dict) -> int:
    """The suite's checks written directly in pandas; returns the number that failed."""
    failed = 0
    n = len(df)
    for e in suite["expectations"]:
        kw, kind = e["kwargs"], e["type"]
        col = df[kw["column"]] if "column" in kw else None
        mostly = kw.get("mostly", 1.0)
        if kind == "expect_table_columns_to_match_set":
            ok = set(df.columns) == set(kw["column_set"])
        elif kind == "expect_column_to_exist":
            ok = kw["column"] in df
        elif kind == "expect_table_row_count_to_be_between":
            ok = kw["min_value"] <= n <= kw["max_value"]
        elif kind == "expect_column_values_to_not_be_null":
            ok = col.notna().mean() >= mostly
        elif kind == "expect_column_values_to_be_unique":
            ok = not col.dropna().duplicated().any()
        elif kind == "expect_column_values_to_be_in_set":
            nn = col.dropna()
            ok = nn.isin(kw["value_set"]).mean() >= mostly if len(nn) else True
        elif kind == "expect_column_values_to_be_in_type_list":
            ok = str(col.dtype) in kw["type_list"] or col.dtype.name.startswith("datetime64")
        elif kind == "expect_column_mean_to_be_between":
            ok = kw["min_value"] <= col.mean() <= kw["max_value"]
        elif kind == "expect_column_values_to_be_between":
            lo, hi = (params.get(v["$PARAMETER"]) if isinstance(v, dict) else v
                      for v in (kw.get("min_value"), kw.get("max_value")))
            nn = col.dropna()
            inside = pd.Series(True, index=nn.index)
            if lo is not None:
                inside &= nn >= lo
            if hi is not None:
                inside &= nn <= hi
            ok = inside.mean() >= mostly if len(nn) else True
        else:
            raise ValueError(f"no pandas version of {kind}")
        failed += not ok
    return failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--workers", type=int, default=0,
                    help="validate.workers: 0 one process per core, 1 no extra processes")
    ap.add_argument("--repeat", type=int, default=3, help="best of N")
    args = ap.parse_args()

    import great_expectations  # noqa: F401  (imports excluded from the timing)

    from driftloop.config import load_params
    from driftloop.contract.cache import file_digest
    from driftloop.contract.suite import time_parameters
    from driftloop.io import list_batches, read_table
    from pipelines.validate import load_suite, run

    folder = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    try:
        make_project(folder, args.rows, args.batches, args.workers)
        params = load_params(folder / "params.yaml")
        now = pd.Timestamp("2026-06-01")
        batches = list_batches(params.path("window"))
        cols = len(read_table(batches[0]).columns)
        cache = params.path("validate_cache")
        newest = f"{file_digest(batches[-1])}{batches[-1].suffix}.json"
        suite = load_suite(params.path("suite"))
        tp = time_parameters(now, max_age_days=params.validate_.max_age_days,
                             clock_skew_minutes=params.validate_.clock_skew_minutes)
        stage, warm, floor, plain = [], [], [], []
        for _ in range(args.repeat):  # interleaved: each round sees the same machine load
            t = time.perf_counter()
            frames = [read_table(p) for p in batches]
            failed = sum(pandas_checks(df, suite, tp) for df in frames)
            pd.concat(frames, ignore_index=True).to_parquet(folder / "plain.parquet", index=False)
            plain.append(time.perf_counter() - t)
            assert failed == 0
            del frames
            shutil.rmtree(cache, ignore_errors=True)  # cold: nothing known
            t = time.perf_counter()
            summary = run(params, now=now)
            stage.append(time.perf_counter() - t)
            for entry in cache.rglob(newest):  # warm: the newest batch is new, the others known
                entry.unlink()
            t = time.perf_counter()
            again = run(params, now=now)
            warm.append(time.perf_counter() - t)
            known = json.loads((params.report_dir("validate") / "cache.json").read_text())
            assert (known["cached_batches"], known["checked_batches"]) == (args.batches - 1, 1), known
            assert again == summary
            t = time.perf_counter()  # every batch known: what no cache can save (read, write,
            run(params, now=now)     # window-level checks)
            floor.append(time.perf_counter() - t)
        assert summary["passed"], summary["failures"]

        s, w, f, p = min(stage), min(warm), min(floor), min(plain)
        print(f"rows={summary['rows']:,} columns={cols} batches={args.batches} "
              f"expectations={len(suite['expectations'])} workers={summary['workers']} "
              f"load average={os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"validate stage cold (GX, read + check + write): {s:.2f} s (best of {args.repeat})")
        print(f"validate stage warm ({args.batches - 1} of {args.batches} batches known): "
              f"{w:.2f} s (best of {args.repeat})")
        print(f"validate stage, every batch known (read + window checks + write): {f:.2f} s")
        print(f"same checks in plain pandas (read + check + write): {p:.2f} s")
        print(f"ratio cold / pandas: {s / p:.2f}x (goal <= 2x: {'met' if s <= 2 * p else 'NOT met'})")
        print(f"ratio warm / cold: {w / s:.2f}x (goal <= 0.3x: {'met' if w <= 0.3 * s else 'NOT met'})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
