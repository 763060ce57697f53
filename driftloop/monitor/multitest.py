"""multitest: a dataset-level drift verdict that stays calm when many features are tested.

Each check tests every feature. With 23 features and a per-feature 95 % noise floor, at least
one feature crosses its floor by chance in about 1 - 0.95**23 = 69 % of checks on unchanged
data. Here each feature gets a bootstrap p-value for its effect size (the same statistic the
report shows, `drift_stats.statistic`), and the p-values are corrected for the number tested:

- Holm: controls the family-wise error rate, P(any false alarm in a check) <= alpha.
- Benjamini-Hochberg: controls the expected share of false discoveries among the flagged
  features; on unchanged data (every null true) that is the same as P(any false alarm) <= alpha,
  and with several features really drifting it flags more of them than Holm.

The p-value's resolution is 1 / (1 + rounds): Holm can flag a lone feature only when
1 / (1 + rounds) <= alpha / features, so rounds must be at least features / alpha - 1
(459 for 23 features at alpha 0.05). `min_rounds` says so.

The null distribution depends on the reference and the batch size only, not on the batch, so a
caller checking many batches of one size against one reference computes it once (`null_table`).
It costs rounds x features calls of `drift_stats.statistic` (about 1-2 ms each at 2000 x 1500
rows, mostly pandas overhead): some 15-25 s for 23 features at 499 rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from driftloop.monitor import drift_stats

CORRECTIONS = ("holm", "bh", "none")


@dataclass(frozen=True)
class FeatureTest:
    column: str
    method: str
    statistic: float
    pvalue: float
    noise_floor: float  # the null's `quantile`, the same figure as drift_stats.noise_floor


@dataclass(frozen=True)
class MultitestVerdict:
    correction: str
    alpha: float
    adjusted: dict[str, float] = field(default_factory=dict)
    significant: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.significant)


def min_rounds(features: int, alpha: float) -> int:
    """Bootstrap rounds below which Holm can never flag a single feature: the least rounds
    with features * 1 / (1 + rounds) <= alpha in floating point, as holm() computes it."""
    rounds = max(0, math.ceil(features / alpha) - 1)
    while features * (1 / (1 + rounds)) > alpha:  # as holm() multiplies the smallest p
        rounds += 1
    return rounds


def null_statistics(method: str, reference, n_current: int, *, numerical: bool, rounds: int,
                    seed: int) -> np.ndarray:
    """The statistic between two independent bootstrap draws of the reference (of the
    reference's size and of `n_current`), `rounds` times: what chance alone produces. Same
    draws, in the same order, as `drift_stats.noise_floor` with the same seed, so the floor is
    a quantile of this array."""
    ref = drift_stats._clean(reference).to_numpy()
    if len(ref) == 0 or n_current == 0 or rounds == 0:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    return np.array([drift_stats.statistic(method, rng.choice(ref, len(ref)),
                                           rng.choice(ref, n_current), numerical=numerical)
                     for _ in range(rounds)])


def bootstrap_pvalue(observed: float, null: np.ndarray) -> float:
    """(1 + #{null >= observed}) / (1 + rounds): never 0, so it is a valid p-value at any
    number of rounds. A statistic that could not be computed (NaN) is no evidence: p = 1."""
    null = np.asarray(null, dtype=float)
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or len(null) == 0:
        return 1.0
    return float((1 + np.count_nonzero(null >= observed)) / (1 + len(null)))


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (reject where adjusted <= alpha), input order kept."""
    p = _pvalues(pvalues)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (q-values), input order kept."""
    p = _pvalues(pvalues)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adj
    return out


def adjust(pvalues, correction: str) -> np.ndarray:
    if correction == "holm":
        return holm(pvalues)
    if correction == "bh":
        return benjamini_hochberg(pvalues)
    if correction == "none":
        return _pvalues(pvalues)
    raise ValueError(f"unknown correction {correction!r}; use one of {CORRECTIONS} "
                     "(drift.correction in params.yaml)")


def _pvalues(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, dtype=float).ravel()
    bad = ~((p >= 0) & (p <= 1))
    if bad.any():
        raise ValueError(f"p-values must lie in [0, 1]; got {p[bad][:5].tolist()}")
    return p


def null_table(reference: pd.DataFrame, methods: dict[str, str], n_current: int, *,
               categorical: list[str], rounds: int, seed: int) -> dict[str, np.ndarray]:
    """The null statistics of every feature for batches of `n_current` rows."""
    return {c: null_statistics(m, reference[c], n_current, numerical=c not in categorical,
                               rounds=rounds, seed=seed) for c, m in methods.items()}


def feature_tests(reference: pd.DataFrame, current: pd.DataFrame, methods: dict[str, str], *,
                  categorical: list[str], nulls: dict[str, np.ndarray], quantile: float
                  ) -> list[FeatureTest]:
    """Observed effect size, bootstrap p-value and noise floor of each feature."""
    missing = [c for c in methods if c not in nulls]
    if missing:
        raise ValueError(f"no null statistics for {missing}: build them with null_table for "
                         "the same features")
    out = []
    for c, m in methods.items():
        obs = drift_stats.statistic(m, reference[c], current[c], numerical=c not in categorical)
        null = nulls[c][np.isfinite(nulls[c])]
        floor = float(np.quantile(null, quantile)) if len(null) else 0.0
        out.append(FeatureTest(c, m, float(obs), bootstrap_pvalue(obs, null), floor))
    return out


def significant_features(pvalues: dict[str, float], *, alpha: float,
                         correction: str) -> MultitestVerdict:
    """Features whose corrected p-value is at most `alpha`."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r} (drift.alpha in params.yaml)")
    names = list(pvalues)
    adj = adjust([pvalues[c] for c in names], correction) if names else np.empty(0)
    adjusted = {c: float(a) for c, a in zip(names, adj, strict=True)}
    return MultitestVerdict(correction, alpha, adjusted,
                            sorted(c for c, a in adjusted.items() if a <= alpha))
