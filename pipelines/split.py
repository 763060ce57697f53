"""split: deterministic, target-stratified train / val / test split of the validated window."""

from __future__ import annotations

import logging

from driftloop.config import Params, load_params
from driftloop.io import read_table, replace_dir, write_json
from driftloop.lock import leave, stage_run
from driftloop.splitting import split_frame

log = logging.getLogger(__name__)


def run(params: Params) -> dict:
    # the window is not kept: each split is a copy of its rows, so it can be freed at once
    s = params.split
    parts = split_frame(read_table(params.path("validated")), target=params.data.target,
                        val_size=s.val_size, test_size=s.test_size, seed=s.seed,
                        method=s.method, time=params.data.time,
                        stratify=params.task != "regression")

    def fill(tmp):
        for name, part in parts.items():
            part.to_parquet(tmp / f"{name}.parquet", index=False)

    replace_dir(params.path("splits"), fill)
    t = params.data.time
    summary = {name: {"rows": len(p), "positive_rate": round(float(p[params.data.target].mean()), 5),
                      "first": str(p[t].min()), "last": str(p[t].max())}
               for name, p in parts.items()}
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
