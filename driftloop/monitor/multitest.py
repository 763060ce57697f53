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

The verdict's rule (`dataset_rule`, `drift.correction`) is one of: `binomial` (the default: keep
each feature's noise floor and require as many drifted features as chance alone reaches with
probability at most `drift.family_alpha`), or `holm` / `bh` (each feature's corrected p-value,
turned into a per-feature threshold by `corrected_floors` so Evidently's report agrees).

The null distribution depends on the reference and the batch size only, not on the batch, so a
caller checking many batches of one size against one reference computes it once (`null_table`).
It costs rounds x features bootstrap statistics, computed from counts of the coded reference
(`drift_stats.bootstrap_statistics`).
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
    return drift_stats.bootstrap_statistics(method, reference, n_current, numerical=numerical,
                                            rounds=rounds, seed=seed)


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


# ----------------------------------------------------------------------------- the dataset rule
@dataclass(frozen=True)
class DatasetRule:
    """How many drifted features make dataset drift, and why (`drift.correction`)."""
    correction: str            # binomial | holm | bh
    family_alpha: float        # the false-alarm chance per check the rule aims at
    features: int
    required: int              # drifted features that make dataset drift
    rounds: int                # bootstrap rounds the per-feature floors use
    feature_false_rate: float | None  # binomial: chance a feature crosses its floor by chance
    false_alarm_chance: float | None  # binomial: chance of >= `required` such (independent)

    def text(self) -> str:
        if self.correction == "binomial":
            return (f"at least {self.required} of {self.features} needed: binomial rule, each "
                    f"feature crosses its floor by chance with p <= {self.feature_false_rate:.3f}, "
                    f"so {self.required} or more by chance has p = {self.false_alarm_chance:.2g} "
                    f"(drift.family_alpha {self.family_alpha:g})")
        return (f"at least {self.required} of {self.features} needed; per feature, "
                f"{self.correction}-corrected bootstrap p <= {self.family_alpha:g} "
                f"({self.rounds} rounds)")


def feature_false_rate(rounds: int, quantile: float) -> float:
    """Chance that a fresh draw of an unchanged feature exceeds its floor, the `quantile` of
    `rounds` bootstrap values (np.quantile's linear interpolation). With few rounds the floor
    is a low order statistic: 20 rounds at 0.95 sit between the 19th and 20th of 20 values,
    exceeded with chance up to 2/21 = 0.095, not 0.05. This is that upper bound; without
    rounds (no floor) it is 1 - quantile."""
    if rounds < 1:
        return 1.0 - quantile
    below = math.floor((rounds - 1) * quantile)  # 0-based order statistic under the floor
    return max(1.0 - quantile, (rounds - below) / (rounds + 1))


def binomial_required(features: int, rate: float, family_alpha: float) -> tuple[int, float]:
    """(k, chance): the least k with P(Binomial(features, rate) >= k) <= family_alpha, and that
    chance; all features when even that is too likely (the chance then says how far off)."""
    for k in range(1, features + 1):
        if (chance := _binom_tail(features, rate, k)) <= family_alpha:
            return k, chance
    return features, _binom_tail(features, rate, features)


def _binom_tail(n: int, rate: float, k: int) -> float:
    """P(Binomial(n, rate) >= k)."""
    from scipy import stats

    return float(stats.binom.sf(k - 1, n, rate)) if n else 0.0


def dataset_rule(features: int, *, correction: str, family_alpha: float, drift_share: float,
                 noise_rounds: int, noise_quantile: float) -> DatasetRule:
    """The dataset verdict's rule (pure). Never fewer than ceil(drift_share * features).

    binomial: the per-feature floors stay as configured and dataset drift needs the least
    count of drifted features whose chance on unchanged data, features taken as independent,
    is at most `family_alpha`. Correlated features cross their floors together, so the real
    chance is higher than this figure: the rule is optimistic for them.
    holm / bh: each feature drifts only when its corrected bootstrap p-value is at most
    `family_alpha` (rounds raised to `min_rounds` so a lone feature can pass)."""
    if correction not in ("binomial", "holm", "bh"):
        raise ValueError(f"unknown drift.correction {correction!r} in params.yaml; use binomial, "
                         "holm or bh")
    share_count = min(features, max(1, math.ceil(drift_share * features - 1e-9)))
    if correction == "binomial":
        rate = feature_false_rate(noise_rounds, noise_quantile)
        k = max(binomial_required(features, rate, family_alpha)[0], share_count)
        return DatasetRule(correction, family_alpha, features, k, noise_rounds, rate,
                           _binom_tail(features, rate, k))
    rounds = max(noise_rounds, min_rounds(max(features, 1), family_alpha))
    return DatasetRule(correction, family_alpha, features, share_count, rounds, None, None)


def corrected_floors(pvalues: dict[str, float], nulls: dict[str, np.ndarray], *, alpha: float,
                     correction: str) -> dict[str, float]:
    """Per feature, the effect size at and above which it counts as drifted under `correction`
    (pure). Holm and BH both flag exactly the features with p <= one common level (Holm:
    alpha / (m - r), BH: alpha * r / m, r the number flagged), and a bootstrap p-value falls
    as the statistic rises, so that level becomes one statistic threshold per feature: handed
    to Evidently like a noise floor, the report and the verdict flag the same columns."""
    verdict = significant_features(pvalues, alpha=alpha, correction=correction)
    m, r = len(pvalues), len(verdict.significant)
    level = alpha / max(m - r, 1) if correction == "holm" else alpha * max(r, 1) / max(m, 1)
    # a column with no values in the batch has no null and no statistic: nothing to lift
    return {c: critical_value(nulls[c], level) if len(nulls[c]) else 0.0 for c in pvalues}


def critical_value(null: np.ndarray, level: float) -> float:
    """The least statistic s (just above a null value) with bootstrap_pvalue(s, null) <= level;
    +inf when no statistic reaches it (too few rounds)."""
    null = np.sort(np.asarray(null, dtype=float)[np.isfinite(null)])[::-1]
    n = len(null)
    allowed = math.floor(level * (1 + n) * (1 + 1e-12)) - 1  # null values >= s allowed
    if allowed < 0:
        return float("inf")
    if allowed >= n:
        return 0.0
    return float(np.nextafter(null[allowed], np.inf))
