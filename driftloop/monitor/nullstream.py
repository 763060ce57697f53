"""nullstream: how often the loop cries wolf, and how soon it notices a real shift (pure).

Two kinds of streams of periods, each then run through the real drift check and retrain
policy (`replay.watch`, `backtest.streams`):

- a null stream: every period resampled, with replacement, from the reference (the rows the
  champion was trained on and the drift check compares against). Nothing changed, so every
  drift verdict is a false alarm and every retrain asked for is a false retrain;
  `per_year` scales their count to a year of periods.
- an onset stream: `onset` null periods, then periods with a known shift (the data's own
  later periods). `detection_delay` counts the periods from the onset to the first drift
  verdict (0: flagged in the onset period itself).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PERIOD_DAYS = {"week": 7.0, "month": 365.25 / 12}
YEAR_DAYS = 365.25


def null_stream(reference: pd.DataFrame, n_periods: int, rows: int, seed: int
                ) -> list[pd.DataFrame]:
    """`n_periods` periods of `rows` rows each, drawn with replacement from `reference`."""
    if n_periods < 0 or rows < 1:
        raise ValueError(f"a null stream needs n_periods >= 0 and rows >= 1, got {n_periods} "
                         f"and {rows} (--null, and the rows of the data's periods)")
    if reference.empty:
        raise ValueError("the reference has no rows to resample a null stream from")
    rng = np.random.default_rng(seed)
    return [reference.iloc[rng.integers(0, len(reference), rows)].reset_index(drop=True)
            for _ in range(n_periods)]


def onset_stream(reference: pd.DataFrame, shifted: Sequence[pd.DataFrame], *, onset: int,
                 rows: int, seed: int) -> list[pd.DataFrame]:
    """`onset` null periods from `reference`, then the `shifted` periods as they are: the
    first shifted period has index `onset`."""
    if not shifted:
        raise ValueError("an onset stream needs shifted periods after the onset; the data has "
                         "none after its initial periods")
    return [*null_stream(reference, onset, rows, seed), *shifted]


def per_year(count: int, periods: int, every: str) -> float | None:
    """A count over `periods` periods of length `every`, scaled to a year."""
    if periods < 1:
        return None
    return count * YEAR_DAYS / (periods * PERIOD_DAYS[every])


def detection_delay(flags: Sequence[bool], onset: int) -> int | None:
    """Periods from the onset to the first flag at or after it; None when never flagged."""
    return next((i - onset for i, f in enumerate(flags) if i >= onset and f), None)


def null_figures(statuses: Sequence[str], actions: Sequence[str], every: str) -> dict:
    """False drift verdicts and false retrains of a null stream, counted and per year."""
    n = len(statuses)
    drift = sum(s == "drift" for s in statuses)
    retrains = sum(a == "retrain" for a in actions)
    return {"periods": n, "every": every, "false_drift": drift,
            "false_drift_per_year": per_year(drift, n, every), "false_retrains": retrains,
            "false_retrains_per_year": per_year(retrains, n, every)}


def onset_figures(statuses: Sequence[str], actions: Sequence[str], onset: int, every: str,
                  drops: Sequence[float | None] = ()) -> dict:
    """Detection delay (first drift verdict) and retrain delay (first retrain asked for) in
    periods after the onset, the false alarms before it, and the mean metric drop of the
    periods from the onset on (how large the shift is for the champion)."""
    after = [d for d in list(drops)[onset:] if d is not None and np.isfinite(d)]
    return {"periods": len(statuses), "every": every, "onset": onset,
            "detection_delay": detection_delay([s == "drift" for s in statuses], onset),
            "retrain_delay": detection_delay([a == "retrain" for a in actions], onset),
            "false_drift_before_onset": sum(s == "drift" for s in statuses[:onset]),
            "false_retrains_before_onset": sum(a == "retrain" for a in actions[:onset]),
            "metric_drop_after_onset": float(np.mean(after)) if after else None}
