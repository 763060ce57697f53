"""register: record the new model version; move @champion only when the gate says so.

The gate (`driftloop.gate.decide_promotion`) is a pure function of numbers computed here on the frozen test
split: the challenger's metrics against absolute thresholds, the paired-bootstrap interval of
its improvement over the champion, per-slice regressions, and whether both predict the same.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
from dataclasses import asdict
from pathlib import Path

import yaml

from driftloop import tracking
from driftloop.config import Params, load_params, params_hash
from driftloop.gate import Decision, compare, confirm_promotion, decide_promotion
from driftloop.io import read_table, write_json
from driftloop.learn.models import as_matrix
from driftloop.lock import champion_lock, leave, stage_run
from driftloop.metrics import encode_target
from driftloop.tracking import CHAMPION, current_champion
from driftloop.trigger import Trigger, read_trigger

# what run() imports when it needs it: a flow's stage server imports these ahead
# (driftloop/dvcserve.py), so the stage starts warm
LAZY_IMPORTS = ("mlflow.pyfunc", "xgboost", "torch", *tracking.STORE_IMPORTS)
log = logging.getLogger(__name__)


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
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        return {o["path"]: o.get("md5", "") for s in stages.values() for o in s.get("outs", [])
                if o["path"].startswith("data/")}
    except (yaml.YAMLError, AttributeError, KeyError, TypeError) as exc:
        log.warning("%s is damaged (%s): the version records no data hashes; restore it with "
                    "`git checkout dvc.lock`", lock, exc)
        return {}


def contract_result(params: Params) -> str:
    report = params.report_dir("validate") / "report.json"
    if not report.exists():
        return "unknown"
    r = json.loads(report.read_text())
    return f"passed={r.get('passed')} batches={r.get('batches')} warnings={len(r.get('failures', []))}"


def _scalar_metrics(m: dict) -> dict:
    return {k: v for k, v in m.items() if isinstance(v, (int, float))}


def move_champion(params: Params, client, name: str, version: str, decision: Decision,
                  compared: str | None, trigger: str = "manual") -> Decision:
    """Move @champion to `version` if the gate says so and @champion is still `compared`, the
    version the gate judged against: a compare-and-set under the champion lock, which
    `driftloop rollback` takes too. Returns the decision as carried out."""
    if not decision.promote:
        return decision
    with champion_lock(params, f"promotion of {name} v{version}"):
        now = current_champion(client, name)
        carried = confirm_promotion(decision, compared, now.version if now else None)
        if carried.promote:
            client.set_registered_model_alias(name, CHAMPION, version)
            tracking.record_move(client, name, kind="promotion", from_version=compared,
                                 to_version=version, reason=carried.reason, trigger=trigger)
    return carried


def run(params: Params, trigger: Trigger) -> dict:
    from mlflow import MlflowClient

    name, task, rp = params.project.name, params.task, params.register_
    metric = rp.metric
    train_report = json.loads((params.report_dir("train") / "metrics.json").read_text())
    challenger = json.loads((params.report_dir("evaluate") / "metrics.json").read_text())
    tracking.setup(params)
    tracking.require_run(train_report["run_id"], f"{params.paths.reports}/train/metrics.json")
    client = MlflowClient()
    champ = current_champion(client, name)
    if champ is not None and champ.tags.get("decision") == "promoting":
        # an earlier run moved the alias and stopped before its last tag: finish its record
        client.set_model_version_tag(name, champ.version, "decision", "promoted")
    champ_metrics, boot, regressed, identical = None, None, [], False
    if champ is not None:  # both models on the very same frozen test rows
        test = read_table(params.path("splits") / "test.parquet")
        y = encode_target(test[params.data.target], task, train_report.get("classes"))
        threshold = train_report.get("threshold")
        x = test[params.data.features]
        p_new = as_matrix(tracking.load_model(str(params.path("model"))).predict(x))
        # by version, not by alias: the alias may move while this runs (see tracking.promote)
        p_old = as_matrix(tracking.load_model(f"models:/{name}/{champ.version}").predict(x))
        ev = compare(task, rp, params.evaluate, test, y, p_new, p_old, threshold)
        champ_metrics, boot, regressed, identical = (ev.champion, ev.bootstrap, ev.slices_regressed,
                                                     ev.identical)
    decision = decide_promotion(metric=metric, challenger=_scalar_metrics(challenger),
                                thresholds=rp.thresholds, margin=rp.margin, champion=champ_metrics,
                                bootstrap=boot, slices_regressed=regressed, identical=identical)

    evidence = {
        "trigger": trigger.kind,
        "trigger_reason": trigger.reason,
        # "promoting" until the alias has moved: a version never claims more than happened
        "decision": "promoting" if decision.promote else "kept_champion",
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
    evidence = {k: str(v) for k, v in evidence.items()}
    mv = tracking.register_version(client, name, train_report["model_uri"],
                                   train_report["run_id"], evidence)
    # compare-and-set: the alias moves only if @champion is still the version judged above
    carried = move_champion(params, client, name, mv.version, decision,
                            champ.version if champ else None, trigger.kind)
    moved = carried != decision
    if moved:
        log.warning("version %s: %s", mv.version, carried.reason)
        for k, v in {"decision": "refused_champion_moved", "reason": carried.reason}.items():
            client.set_model_version_tag(name, mv.version, k, v)
        decision, champ = carried, current_champion(client, name)
    elif decision.promote:
        client.set_model_version_tag(name, mv.version, "decision", "promoted")
    # the registry's version list reads without opening the tags
    verdict = ("promoted" if decision.promote else
               "refused (champion moved)" if moved else "kept champion")
    client.update_model_version(name, mv.version, description=tracking.one_line(
        f"{verdict} ({trigger.kind}): {decision.reason}"))
    result = {"model": name, "version": int(mv.version), **asdict(decision),
              "champion_version": int(mv.version) if decision.promote else
              (int(champ.version) if champ else None), "champion_moved": moved,
              "metric": metric, "challenger": _scalar_metrics(challenger), "champion": champ_metrics,
              "bootstrap": asdict(boot) if boot else None, "slices_regressed": regressed,
              "trigger": evidence["trigger"], "run_id": train_report["run_id"]}
    write_json(params.report_dir("register") / "decision.json", result)
    log.info("version %s: %s", mv.version, decision.reason)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.register", description=__doc__)
    parser.add_argument("--trigger-file", type=Path, default=None,
                        help="JSON {kind, reason} written by the train flow; absent: a manual run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    with stage_run(params, "register"):
        run(params, read_trigger(args.trigger_file))


if __name__ == "__main__":
    main()
    leave()  # done: skip the interpreter's teardown (driftloop.lock.leave)
