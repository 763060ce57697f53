"""split: deterministic, target-stratified train / val / test split of the validated window."""

from __future__ import annotations

import logging

from driftloop.config import Params, load_params
from driftloop.io import read_window, replace_dir, write_arrow, write_json
from driftloop.lock import leave, stage_run
from driftloop.splitting import split_rows

log = logging.getLogger(__name__)


def run(params: Params) -> dict:
    # Rows are drawn from the target and time columns only, then taken from the window in Arrow
    # and written as they are: no row of the window becomes a Python object (the same rows as
    # splitting.split_frame, which the pandas callers use).
    s, d = params.split, params.data
    window = read_window(params.path("validated"))
    keys = window.select([c for c in dict.fromkeys([d.target, d.time])
                          if c in window.column_names]).to_pandas()
    rows = split_rows(keys, target=d.target, val_size=s.val_size, test_size=s.test_size,
                      seed=s.seed, method=s.method, time=d.time,
                      stratify=params.task != "regression")

    def fill(tmp):
        for name, positions in rows.items():
            write_arrow(tmp / f"{name}.parquet", window.take(positions))

    replace_dir(params.path("splits"), fill)
    summary = {}
    for name, positions in rows.items():
        part = keys.take(positions)
        summary[name] = {"rows": len(part),
                         "positive_rate": round(float(part[d.target].mean()), 5),
                         "first": str(part[d.time].min()), "last": str(part[d.time].max())}
    write_json(params.report_dir("split") / "summary.json", summary)
    log.info("split: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    with stage_run(params, "split"):
        run(params)


if __name__ == "__main__":
    main()
    leave()  # done: skip the interpreter's teardown (driftloop.lock.leave)
