"""register: record the new model version; move @champion only when the gate says so.

The gate (`decide_promotion`) is a pure function of numbers computed here on the frozen test
split: the challenger's metrics against absolute thresholds, the paired-bootstrap interval of
its improvement over the champion, per-slice regressions, and whether both predict the same.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from pipelines import tracking
from pipelines.config import Params, load_params, params_hash
from pipelines.evaluate import encode_target, slice_metrics
from pipelines.io import read_table, write_json
from pipelines.metrics import BootstrapResult, higher_is_better, metric_fn, paired_bootstrap
from pipelines.models import as_matrix

log = logging.getLogger(__name__)
CHAMPION = "champion"


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


def git_commit(root: Path) -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_hashes(root: Path) -> dict[str, str]:
    """md5 of every DVC-tracked data output recorded in dvc.lock, by path."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {o["path"]: o.get("md5", "") for s in stages.values() for o in s.get("outs", [])
            if o["path"].startswith("data/")}


def contract_result(params: Params) -> str:
    report = params.report_dir("validate") / "report.json"
    if not report.exists():
        return "unknown"
    r = json.loads(report.read_text())
    return f"passed={r.get('passed')} batches={r.get('batches')} warnings={len(r.get('failures', []))}"


def current_champion(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _scalar_metrics(m: dict) -> dict:
    return {k: v for k, v in m.items() if isinstance(v, (int, float))}


def run(params: Params) -> dict:
    import mlflow
    from mlflow import MlflowClient

    name, task, rp = params.project.name, params.task, params.register_
    metric = rp.metric
    train_report = json.loads((params.report_dir("train") / "metrics.json").read_text())
    challenger = json.loads((params.report_dir("evaluate") / "metrics.json").read_text())
    tracking.setup(params)
    tracking.require_run(train_report["run_id"], f"{params.paths.reports}/train/metrics.json")
    client = MlflowClient()
    champ = current_champion(client, name)
    champ_metrics, boot, regressed, identical = None, None, [], False
    if champ is not None:  # both models on the very same frozen test rows
        test = read_table(params.path("splits") / "test.parquet")
        y = encode_target(test[params.data.target], task, train_report.get("classes"))
        threshold = train_report.get("threshold") or 0.5
        x = test[params.data.features]
        p_new = as_matrix(mlflow.pyfunc.load_model(str(params.path("model"))).predict(x))
        p_old = as_matrix(mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}").predict(x))
        fn = metric_fn(task, metric, threshold)
        champ_metrics = {metric: fn(y, p_old)}
        identical = p_new.shape == p_old.shape and bool(np.allclose(p_new, p_old, rtol=0, atol=1e-9))
        boot = paired_bootstrap(y, p_new, p_old, fn, higher=higher_is_better(metric),
                                n=rp.bootstrap_samples, seed=rp.seed, confidence=rp.confidence)
        kw = {"task": task, "columns": params.evaluate.slices,
              "min_rows": params.evaluate.slice_min_rows, "threshold": threshold}
        regressed = slice_regressions(slice_metrics(test, y, p_new, **kw),
                                      slice_metrics(test, y, p_old, **kw), metric, rp.slice_tolerance)
    decision = decide_promotion(metric=metric, challenger=_scalar_metrics(challenger),
                                thresholds=rp.thresholds, margin=rp.margin, champion=champ_metrics,
                                bootstrap=boot, slices_regressed=regressed, identical=identical)

    mv = mlflow.register_model(train_report["model_uri"], name)
    evidence = {
        "trigger": os.environ.get("DRIFTLOOP_TRIGGER", "manual"),
        "trigger_reason": os.environ.get("DRIFTLOOP_TRIGGER_REASON", ""),
        "decision": "promoted" if decision.promote else "kept_champion",
        "reason": decision.reason,
        "git_commit": git_commit(params.root),
        "params_hash": params_hash(params),
        "data_hashes": json.dumps(data_hashes(params.root), sort_keys=True),
        "contract": contract_result(params),
        "challenger_metrics": json.dumps(_scalar_metrics(challenger)),
        "champion_metrics": json.dumps(champ_metrics),
        "bootstrap": json.dumps(asdict(boot) if boot else None),
        "previous_champion": str(champ.version) if champ else "",
        "chosen_model": train_report["chosen"],
        "task": task,
    }
    for k, v in evidence.items():
        client.set_model_version_tag(name, mv.version, k, str(v))
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, mv.version)
    result = {"model": name, "version": int(mv.version), **asdict(decision),
              "champion_version": int(mv.version) if decision.promote else
              (int(champ.version) if champ else None),
              "metric": metric, "challenger": _scalar_metrics(challenger), "champion": champ_metrics,
              "bootstrap": asdict(boot) if boot else None, "slices_regressed": regressed,
              "trigger": evidence["trigger"], "run_id": train_report["run_id"]}
    write_json(params.report_dir("register") / "decision.json", result)
    log.info("version %s: %s", mv.version, decision.reason)
    return result


def rollback(params: Params, reason: str) -> dict:
    """Move @champion back to the version it replaced, and record why on both versions."""
    from mlflow import MlflowClient

    if not reason.strip():
        raise ValueError("a rollback needs a reason (--reason \"...\"): it is recorded on the model")
    tracking.setup(params)
    client, name = MlflowClient(), params.project.name
    champ = current_champion(client, name)
    if champ is None:
        raise RuntimeError(f"{name!r} has no @{CHAMPION}: nothing to roll back")
    previous = champ.tags.get("previous_champion", "")
    if not previous:
        raise RuntimeError(f"{name} v{champ.version} replaced no earlier champion: nothing to roll "
                           "back to; promote a version by hand with the MLflow client if needed")
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, champ.version, "rolled_back", reason)
    client.set_model_version_tag(name, previous, "restored_by_rollback",
                                 f"from v{champ.version}: {reason}")
    log.info("rolled back %s: @%s v%s -> v%s (%s)", name, CHAMPION, champ.version, previous, reason)
    return {"model": name, "from": int(champ.version), "to": int(previous), "reason": reason}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(load_params())


if __name__ == "__main__":
    main()
