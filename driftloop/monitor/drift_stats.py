"""Drift statistics in plain numpy/scipy: the same effect sizes Evidently reports, plus the
noise floor that makes a verdict sample-size aware.

Evidently computes the figures that are reported; these functions are the yardstick
(benchmarks/bench_drift.py, tests) and estimate how large a statistic gets by chance alone
for a batch of a given size (bootstrap of the reference against itself).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

METHODS = ("wasserstein", "jensenshannon", "psi")
_BINNED_ABOVE = 20  # Evidently bins numerical columns with more distinct values than this


def _clean(x) -> pd.Series:
    s = pd.Series(x)
    if pd.api.types.is_numeric_dtype(s):
        s = s.replace([np.inf, -np.inf], np.nan)
    return s.dropna()


def _shares(ref: pd.Series, cur: pd.Series, *, numerical: bool, fill_zeros: bool):
    """Shares of each bin (numerical, many values) or category, as Evidently bins them."""
    if numerical and ref.nunique() > _BINNED_ABOVE:
        both = np.concatenate([ref.to_numpy(float), cur.to_numpy(float)])
        edges = np.histogram_bin_edges(both, bins="sturges")
        p = np.histogram(ref.to_numpy(float), edges)[0] / len(ref)
        q = np.histogram(cur.to_numpy(float), edges)[0] / len(cur)
    else:
        keys = pd.Index(ref.unique()).union(pd.Index(cur.unique()))
        p = ref.value_counts().reindex(keys, fill_value=0).to_numpy(float) / len(ref)
        q = cur.value_counts().reindex(keys, fill_value=0).to_numpy(float) / len(cur)
    if fill_zeros:
        for a in (p, q):
            low = a[a > 0].min()
            a[a == 0] = low / 1e6 if low <= 1e-4 else 1e-4
    return p, q


def statistic(method: str, reference, current, *, numerical: bool) -> float:
    """Effect size of `current` against `reference` (higher = more drift); NaNs are ignored."""
    ref, cur = _clean(reference), _clean(current)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    if method == "wasserstein":
        norm = max(float(np.std(ref.to_numpy(float))), 0.001)
        return float(stats.wasserstein_distance(ref.to_numpy(float), cur.to_numpy(float)) / norm)
    if method == "jensenshannon":
        p, q = _shares(ref, cur, numerical=numerical, fill_zeros=False)
        return float(distance.jensenshannon(p, q))
    if method == "psi":
        p, q = _shares(ref, cur, numerical=numerical, fill_zeros=True)
        return float(np.sum((p - q) * np.log(p / q)))
    raise ValueError(f"unknown drift method {method!r}; use one of {METHODS} in params.yaml drift")


def noise_floor(method: str, reference, n_current: int, *, numerical: bool, rounds: int,
                quantile: float, seed: int) -> float:
    """The `quantile` of the statistic between two independent bootstrap draws of the
    reference (sizes: the reference's and `n_current`): what chance alone produces."""
    ref = _clean(reference).to_numpy()
    if len(ref) == 0 or n_current == 0 or rounds == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    values = [statistic(method, rng.choice(ref, len(ref)), rng.choice(ref, n_current),
                        numerical=numerical) for _ in range(rounds)]
    return float(np.quantile(values, quantile))


def missing_share(x) -> float:
    s = pd.Series(x)
    return float(s.isna().mean()) if len(s) else 0.0
