"""The promotion gate: promote a challenger or keep the champion, from numbers alone (pure).

The `register` stage computes those numbers on the frozen test split and does what the
decision says; nothing here touches MLflow or files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from driftloop.config import EvaluateParams, RegisterParams
from driftloop.metrics import (
    BootstrapResult,
    higher_is_better,
    metric_fn,
    paired_bootstrap,
    slice_metrics,
)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def threshold_failures(metrics: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """Absolute bars: a floor for higher-is-better metrics, a ceiling for the others."""
    out = []
    for name, bar in thresholds.items():
        value = metrics.get(name, float("nan"))
        ok = value >= bar if higher_is_better(name) else value <= bar
        if not (np.isfinite(value) and ok):
            out.append(f"{name} {value:.4f} {'<' if higher_is_better(name) else '>'} {bar}")
    return out


def slice_regressions(challenger: list[dict], champion: list[dict], metric: str,
                      tolerance: float) -> list[str]:
    """Slices where the challenger is worse than the champion by more than `tolerance`."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    champ = {(s["column"], s["level"]): s[metric] for s in champion}
    out = []
    for s in challenger:
        before = champ.get((s["column"], s["level"]))
        if before is not None and sign * (before - s[metric]) > tolerance:
            out.append(f"{s['column']}={s['level']}: {metric} {before:.4f} -> {s[metric]:.4f}")
    return out


def decide_promotion(*, metric: str, challenger: dict[str, float], thresholds: dict[str, float],
                     margin: float, champion: dict[str, float] | None = None,
                     bootstrap: BootstrapResult | None = None, slices_regressed: list[str] = (),
                     identical: bool = False) -> Decision:
    """Promote only a challenger that passes the absolute thresholds and, when there is a
    champion, differs from it, improves on it with its whole bootstrap interval above the
    margin, and regresses no listed slice beyond tolerance."""
    value = challenger.get(metric, float("nan"))
    if not np.isfinite(value):
        return Decision(False, f"challenger {metric} is not a number ({value})")
    failed = threshold_failures(challenger, {metric: -np.inf if higher_is_better(metric) else np.inf}
                                | thresholds)
    if failed:
        return Decision(False, "challenger fails the absolute thresholds: " + "; ".join(failed))
    if champion is None:
        return Decision(True, f"first model: {metric} {value:.4f} passes the thresholds")
    if identical:
        return Decision(False, "challenger predicts exactly what the champion does on the test "
                               "set: an identical model is never promoted")
    if bootstrap is None or bootstrap.n == 0:
        return Decision(False, "no bootstrap evidence of an improvement")
    ci = (f"{metric} {value:.4f} vs champion {champion[metric]:.4f}; "
          f"{bootstrap.confidence:.0%} interval of the improvement "
          f"[{bootstrap.low:+.4f}, {bootstrap.high:+.4f}]")
    if bootstrap.low <= margin:
        return Decision(False, f"{ci} does not lie above the margin {margin}")
    if slices_regressed:
        return Decision(False, f"{ci}, but slices regress: " + "; ".join(slices_regressed))
    return Decision(True, f"{ci} lies above the margin {margin}; no slice regresses")


def confirm_promotion(decision: Decision, compared: str | None, current: str | None) -> Decision:
    """The gate's decision at the moment of the alias move: a promotion stands only while
    @champion is still the version it was judged against (`compared`; None: no champion).
    Anything else (a rollback, another promotion) moved it in between: refuse, say so."""
    if not decision.promote or str(compared) == str(current):
        return decision
    return Decision(False, f"the gate promoted ({decision.reason}), but @champion moved from "
                           f"{_version(compared)} to {_version(current)} before the alias move, "
                           "so the comparison no longer holds: not promoted; run register "
                           "again to judge against the current champion")


def _version(v: str | None) -> str:
    return "none" if v is None else f"v{v}"


@dataclass(frozen=True)
class Evidence:
    """Champion and challenger on the same rows, which neither trained on."""
    champion: dict[str, float]
    bootstrap: BootstrapResult
    slices_regressed: list[str]
    identical: bool


def compare(task: str, rp: RegisterParams, ev: EvaluateParams, test: pd.DataFrame, y: np.ndarray,
            challenger: np.ndarray, champion: np.ndarray, threshold: float | None) -> Evidence:
    """The numbers the gate needs: the champion's metric, the paired-bootstrap interval of the
    improvement, per-slice regressions (`evaluate.slices` present in `test`) and whether the two
    predict the same (within `register.identical_atol`)."""
    fn = metric_fn(task, rp.metric, threshold)
    identical = challenger.shape == champion.shape and bool(
        np.allclose(challenger, champion, rtol=0, atol=rp.identical_atol))
    boot = paired_bootstrap(y, challenger, champion, fn, higher=higher_is_better(rp.metric),
                            n=rp.bootstrap_samples, seed=rp.seed, confidence=rp.confidence)
    kw = {"task": task, "columns": [c for c in ev.slices if c in test.columns],
          "min_rows": ev.slice_min_rows, "threshold": threshold}
    regressed = slice_regressions(slice_metrics(test, y, challenger, **kw),
                                  slice_metrics(test, y, champion, **kw), rp.metric, rp.slice_tolerance)
    return Evidence({rp.metric: fn(y, champion)}, boot, regressed, identical)
