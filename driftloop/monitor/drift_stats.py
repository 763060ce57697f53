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
    values = bootstrap_statistics(method, reference, n_current, numerical=numerical,
                                  rounds=rounds, seed=seed)
    return float(np.quantile(values, quantile)) if len(values) else 0.0


def bootstrap_statistics(method: str, reference, n_current: int, *, numerical: bool,
                         rounds: int, seed: int) -> np.ndarray:
    """`statistic` between two independent bootstrap draws of the reference (of its size and
    of `n_current`), `rounds` times. The reference is coded once and each draw is counted
    per distinct value, which gives `statistic`'s figures on the drawn rows (to rounding:
    tests/unit/test_drift_decision.py) at a fraction of the cost. The draws are
    `rng.choice(reference, n)` in this order, with `np.random.default_rng(seed)`."""
    ref = _clean(reference)
    if len(ref) == 0 or n_current == 0 or rounds == 0:
        return np.empty(0)
    if method not in METHODS:
        raise ValueError(f"unknown drift method {method!r}; use one of {METHODS} in params.yaml drift")
    codes, values = pd.factorize(ref, sort=pd.api.types.is_numeric_dtype(ref))
    values = np.asarray(values)
    rng = np.random.default_rng(seed)
    out = np.empty(rounds)
    for i in range(rounds):
        a = np.bincount(rng.choice(codes, len(codes)), minlength=len(values))
        b = np.bincount(rng.choice(codes, n_current), minlength=len(values))
        out[i] = _from_counts(method, values, a, b, numerical=numerical)
    return out


def _from_counts(method: str, values: np.ndarray, a: np.ndarray, b: np.ndarray, *,
                 numerical: bool) -> float:
    """`statistic` of two samples given as counts `a`, `b` of each of `values`."""
    keep = (a + b) > 0
    values, a, b = values[keep], a[keep].astype(float), b[keep].astype(float)
    na, nb = a.sum(), b.sum()
    if method == "wasserstein":
        x = values.astype(float)
        mean = (a @ x) / na
        norm = max(float(np.sqrt((a @ (x - mean) ** 2) / na)), 0.001)
        return float(stats.wasserstein_distance(x, x, a, b) / norm)
    if numerical and np.count_nonzero(a) > _BINNED_ABOVE:
        x = values.astype(float)
        lo, hi = float(x.min()), float(x.max())
        width = (hi - lo) / (np.log2(na + nb) + 1.0)  # numpy's "sturges" on both samples
        bins = int(np.ceil((hi - lo) / width)) if width else 1
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        p = np.histogram(x, edges, weights=a)[0] / na
        q = np.histogram(x, edges, weights=b)[0] / nb
    else:
        p, q = a / na, b / nb
    if method == "jensenshannon":
        return float(distance.jensenshannon(p, q))
    for arr in (p, q):
        low = arr[arr > 0].min()
        arr[arr == 0] = low / 1e6 if low <= 1e-4 else 1e-4
    return float(np.sum((p - q) * np.log(p / q)))


def missing_share(x) -> float:
    s = pd.Series(x)
    return float(s.isna().mean()) if len(s) else 0.0
