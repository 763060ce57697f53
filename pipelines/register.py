"""register: record the new model version; move @champion only when the gate says so."""

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
from pipelines.evaluate import binary_metrics
from pipelines.io import read_table, write_json

log = logging.getLogger(__name__)
CHAMPION = "champion"


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide_promotion(challenger: float, champion: float | None, *, metric: str, margin: float,
                     min_metric: float) -> Decision:
    """Promote the challenger only if it clears the floor and beats the champion by > margin."""
    if not np.isfinite(challenger):
        return Decision(False, f"challenger {metric} is not a number ({challenger})")
    if challenger < min_metric:
        return Decision(False, f"challenger {metric} {challenger:.4f} is below the floor "
                               f"{min_metric:.4f} (register.min_metric)")
    if champion is None:
        return Decision(True, f"first model: {metric} {challenger:.4f} clears the floor "
                              f"{min_metric:.4f}")
    gain = challenger - champion
    if gain > margin + 1e-9:  # float noise must not turn a tie at the margin into a win
        return Decision(True, f"challenger {metric} {challenger:.4f} beats champion "
                              f"{champion:.4f} by {gain:+.4f} (> margin {margin})")
    return Decision(False, f"challenger {metric} {challenger:.4f} vs champion {champion:.4f}: "
                           f"gain {gain:+.4f} is not above the margin {margin}")


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
    """md5 of every DVC-tracked output recorded in dvc.lock, by path."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {o["path"]: o.get("md5", "") for s in stages.values() for o in s.get("outs", [])
            if o["path"].startswith("data/")}


def current_champion(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def run(params: Params) -> dict:
    import mlflow
    from mlflow import MlflowClient

    name, metric = params.project.name, params.register_.metric
    train_report = json.loads((params.report_dir("train") / "metrics.json").read_text())
    challenger = json.loads((params.report_dir("evaluate") / "metrics.json").read_text())
    tracking.setup(params)
    client = MlflowClient()
    champ = current_champion(client, name)
    champ_metrics = None
    if champ is not None:  # score the champion on the very same test rows
        test = read_table(params.path("splits") / "test.parquet")
        model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
        proba = np.asarray(model.predict(test[params.data.features]))
        champ_metrics = binary_metrics(test[params.data.target].to_numpy(), proba,
                                       params.evaluate.threshold)
    decision = decide_promotion(
        challenger[metric], champ_metrics[metric] if champ_metrics else None, metric=metric,
        margin=params.register_.margin, min_metric=params.register_.min_metric)

    mv = mlflow.register_model(train_report["model_uri"], name)
    evidence = {
        "trigger": os.environ.get("DRIFTLOOP_TRIGGER", "manual"),
        "trigger_reason": os.environ.get("DRIFTLOOP_TRIGGER_REASON", ""),
        "decision": "promoted" if decision.promote else "kept_champion",
        "reason": decision.reason,
        "git_commit": git_commit(params.root),
        "params_hash": params_hash(params),
        "data_hashes": json.dumps(data_hashes(params.root), sort_keys=True),
        "challenger_metrics": json.dumps({k: v for k, v in challenger.items() if k != "confusion"}),
        "champion_metrics": json.dumps(
            {k: v for k, v in champ_metrics.items() if k != "confusion"} if champ_metrics else None),
        "previous_champion": champ.version if champ else "",
        "chosen_model": train_report["chosen"],
    }
    for k, v in evidence.items():
        client.set_model_version_tag(name, mv.version, k, str(v))
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, mv.version)
    result = {"model": name, "version": int(mv.version), **asdict(decision),
              "champion_version": int(mv.version) if decision.promote else
              (int(champ.version) if champ else None),
              "challenger": {k: challenger[k] for k in ("auc", "f1", "log_loss")},
              "champion": ({k: champ_metrics[k] for k in ("auc", "f1", "log_loss")}
                           if champ_metrics else None),
              "trigger": evidence["trigger"], "run_id": train_report["run_id"]}
    write_json(params.report_dir("register") / "decision.json", result)
    log.info("version %s: %s", mv.version, decision.reason)
    return result


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(load_params())


if __name__ == "__main__":
    main()
