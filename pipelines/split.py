"""split: deterministic, target-stratified train / val / test split of the validated window."""

from __future__ import annotations

import logging

import pandas as pd
from sklearn.model_selection import train_test_split

from driftloop.config import Params, load_params
from driftloop.io import read_table, replace_dir, write_json

log = logging.getLogger(__name__)


def split_frame(df: pd.DataFrame, *, target: str, val_size: float, test_size: float,
                seed: int, method: str = "stratified", time: str | None = None,
                ) -> dict[str, pd.DataFrame]:
    """Train / val / test; the same seed gives the same rows in each split (pure).

    method "stratified": all three are stratified random samples.
    method "time": test is the newest `test_size` share by `time` (rows no earlier model has
    seen, so a champion and a challenger can be compared fairly); train and val are a
    stratified random split of the older rows.
    """
    if val_size + test_size >= 1:
        raise ValueError(f"split.val_size + split.test_size must be < 1, got {val_size} + "
                         f"{test_size}; lower them in params.yaml")
    if method == "time":
        if time is None or time not in df.columns:
            raise ValueError(f"split.method=time needs the time column {time!r} in the data; "
                             "set data.time in params.yaml, or use split.method: stratified")
        ordered = df.sort_values([time], kind="stable")
        n_test = max(1, round(len(df) * test_size))
        rest, test = ordered.iloc[:-n_test], ordered.iloc[-n_test:]
    else:
        rest, test = train_test_split(df, test_size=test_size, random_state=seed,
                                      stratify=df[target])
    train, val = train_test_split(rest, test_size=val_size / (1 - test_size), random_state=seed,
                                  stratify=rest[target])
    return {"train": train.reset_index(drop=True), "val": val.reset_index(drop=True),
            "test": test.reset_index(drop=True)}


def run(params: Params) -> dict:
    df = read_table(params.path("validated"))
    parts = split_frame(df, target=params.data.target, val_size=params.split.val_size,
                        test_size=params.split.test_size, seed=params.split.seed,
                        method=params.split.method, time=params.data.time)

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
    run(load_params())


if __name__ == "__main__":
    main()
