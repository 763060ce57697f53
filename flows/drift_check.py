"""drift-check flow: is the newest batch drifting, and should the champion be retrained?

1. `drift`: per-feature drift (effect size vs the noise at this batch size), prediction
   drift and the champion's measured metric on every labelled window next to its test
   figure (reports/drift/<batch>/, MLflow run);
2. artifacts: a table of per-feature drift, a table of the champion's labelled windows (its
   decay) and a link to the Evidently HTML report;
3. `policy`: the retrain policy (driftloop/monitor/policy.py) decides, with its reason, and keeps
   its small state under data/monitoring/;
4. `alert`: Apprise notifications for the verdicts listed in `alerts.on`;
5. only on a "retrain" decision, `driftloop.drift.detected` is emitted; the `train/weekly`
   deployment's trigger (prefect.yaml) starts a run with trigger=drift and the reason.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from driftloop.config import Params
from driftloop.monitor import alerts as alert_stage
from driftloop.monitor import drift as drift_stage
from driftloop.monitor import policy as policy_stage
from flows.common import project_params, resolve_batch

DRIFT_EVENT = "driftloop.drift.detected"


@task(name="drift", cache_policy=NO_CACHE)
def check(params: Params, batch: str | None) -> dict:
    result = drift_stage.run(params, resolve_batch(params, batch))
    return {**result, "project": params.project.name}


@task(name="policy", cache_policy=NO_CACHE)
def decide(params: Params, result: dict) -> dict:
    return policy_stage.apply(params, result)


@task(name="alert", cache_policy=NO_CACHE)
def alert(params: Params, result: dict, decision: dict) -> list[str]:
    perf = result.get("performance") or {}
    if not alert_stage.should_alert(params.alerts, action=decision["action"],
                                    drift_status=result["status"],
                                    performance_drop=perf.get("drop"),
                                    performance_limit=params.policy.performance_drop):
        return []
    title, body = alert_stage.message(result, decision)
    get_run_logger().warning("%s\n%s", title, body)
    failed = alert_stage.send(alert_stage.alert_urls(params.alerts), title, body,
                              timeout=params.alerts.timeout)
    for url in failed:
        get_run_logger().warning("alert to %s failed (see the log above); the check goes on", url)
    return failed


@task(name="request-retrain")
def request_retrain(result: dict, decision: dict) -> None:
    reason = f"drift in {result['batch']}: {decision['reason']}"
    create_markdown_artifact(
        key="drift-alert",
        markdown=(f"# Retraining requested after `{result['batch']}`\n\n{reason}\n\n"
                  f"Drift: {result['reason']}\n\nChampion version: {result['champion_version']}"),
        description="retrain decision")
    emit_event(event=DRIFT_EVENT,
               resource={"prefect.resource.id": f"driftloop.dataset.{result['project']}"},
               payload={"batch": result["batch"], "share": result["share"], "reason": reason,
                        "trigger": decision["trigger"], "dedupe_key": decision["dedupe_key"],
                        "drifted_columns": result["drifted_columns"]})


def _publish(result: dict) -> None:
    if result["columns"]:
        rows = [{k: c[k] for k in ("column", "method", "score", "threshold", "noise_floor",
                                   "missing_reference", "missing_current", "drifted", "why")}
                for c in result["columns"]]
        create_table_artifact(key="drift-columns", table=rows,
                              description=f"per-feature drift for {result['batch']}")
    if windows := result.get("labelled_windows"):
        create_table_artifact(
            key="champion-performance",
            table=[{k: w[k] for k in ("window", "labelled", "scored", "metric", "value",
                                      "champion_test", "drop")} for w in windows],
            description=f"champion v{result['champion_version']} on labelled windows vs its test "
                        "figure")
    if result["report_html"]:
        create_link_artifact(key="drift-report", link=Path(result["report_html"]).as_uri(),
                             link_text=f"Evidently report for {result['batch']}",
                             description=f"also in MLflow run {result['mlflow_run_id']} (drift/)")


@flow(name="drift-check", log_prints=True)
def drift_check(batch: str | None = None) -> dict:
    params = project_params()
    result = check(params, batch)
    _publish(result)
    decision = decide(params, result)
    alert(params, result, decision)
    if decision["action"] == "retrain":
        request_retrain(result, decision)
    return {**result, "policy": decision}


if __name__ == "__main__":
    drift_check()
