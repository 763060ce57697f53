"""drift-check flow: is the newest batch drifting, and should the champion be retrained?

1. `drift`: per-feature drift (effect size vs the noise at this batch size), prediction
   drift and the champion's measured metric on every labelled window next to its test
   figure (reports/drift/<batch>/, MLflow run);
2. artifacts: a table of per-feature drift, a table of the champion's labelled windows (its
   decay) and a link to the Evidently HTML report;
3. `policy`: the retrain policy (driftloop/monitor/policy.py) decides, with its reason, keeps
   its small state under data/monitoring/, and only on a "retrain" decision emits
   `driftloop.drift.detected`; the `train/weekly` deployment's trigger (prefect.yaml) starts
   a run with trigger=drift and the reason. The event is sent, and its receipt confirmed by
   the Prefect API, before the policy keeps the retrain in its state: with the API down the
   check fails naming it, the state is unchanged, and the next check asks again;
4. `alert`: Apprise notifications for the verdicts listed in `alerts.on`;
5. `monitoring-page`: reports/monitoring.html (drift, estimated and realized metrics over
   time, retrains and promotions), logged to the check's MLflow run and linked from the UI.

Transient Prefect API errors are retried with backoff (`services:` in params.yaml).
"""

from __future__ import annotations

import argparse
import sys

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import Event
from prefect.events.clients import get_events_client
from prefect.settings import PREFECT_API_URL
from prefect.utilities.asyncutils import run_coro_as_sync

from driftloop import tracking
from driftloop.config import Params, ServiceParams
from driftloop.monitor import alerts as alert_stage
from driftloop.monitor import drift as drift_stage
from driftloop.monitor import policy as policy_stage
from driftloop.monitor.page import write_monitoring_page
from driftloop.retry import ServiceDown, require, with_retries
from flows.common import project_params, resolve_batch

DRIFT_EVENT = "driftloop.drift.detected"
PREFECT_TODO = ("start it (`make demo` starts one, or `prefect server start`) or set "
                "PREFECT_API_URL to a running server, then run the drift check again")


def prefect_api() -> str:
    return str(PREFECT_API_URL.value() or "(PREFECT_API_URL is not set)")


def send_event(event: Event, sp: ServiceParams) -> None:
    """Send `event` and wait until the Prefect API confirms it (a websocket ping after the
    send); retried with backoff, then ServiceDown naming the API. `emit_event` would queue it
    and drop it silently when the API is down."""
    async def send() -> None:
        async with get_events_client(reconnection_attempts=0, checkpoint_every=1) as client:
            await client.emit(event)

    # any failure to deliver counts: the caller keeps no retrain it could not request
    with_retries(lambda: run_coro_as_sync(send()), sp, service="the Prefect API",
                 url=prefect_api(), todo=PREFECT_TODO, transient=(Exception,))


@task(name="drift", cache_policy=NO_CACHE)
def check(params: Params, batch: str | None) -> dict:
    result = drift_stage.run(params, resolve_batch(params, batch))
    return {**result, "project": params.project.name}


@task(name="policy", cache_policy=NO_CACHE)
def decide(params: Params, result: dict) -> dict:
    return policy_stage.apply(params, result,
                              request=lambda decision: request_retrain(params, result, decision))


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


def request_retrain(params: Params, result: dict, decision: policy_stage.Decision) -> None:
    """The retrain event, confirmed by the API (the policy keeps the retrain only then), and
    an artifact saying why (best effort)."""
    reason = f"drift in {result['batch']}: {decision.reason}"
    send_event(Event(event=DRIFT_EVENT,
                     resource={"prefect.resource.id": f"driftloop.dataset.{result['project']}"},
                     payload={"batch": result["batch"], "share": result["share"], "reason": reason,
                              "trigger": decision.trigger, "dedupe_key": decision.dedupe_key,
                              "drifted_columns": result["drifted_columns"]}), params.services)
    try:
        create_markdown_artifact(
            key="drift-alert",
            markdown=(f"# Retraining requested after `{result['batch']}`\n\n{reason}\n\n"
                      f"Drift: {result['reason']}\n\nChampion version: "
                      f"{result['champion_version']}"),
            description="retrain decision")
    except Exception as exc:  # the request went out; a missing artifact must not undo it
        get_run_logger().warning("retrain requested, but its artifact was not saved: %s", exc)


def _publish(params: Params, result: dict) -> None:
    if result["columns"]:
        rows = [{k: c[k] for k in ("column", "method", "score", "threshold", "noise_floor",
                                   "missing_reference", "missing_current", "drifted", "why")}
                for c in result["columns"]]
        create_table_artifact(key="drift-columns", table=rows,
                              description=f"per-feature drift for {result['batch']}: "
                                          f"{result['status']}, {result['reason']}"[:1000])
    if windows := result.get("labelled_windows"):
        create_table_artifact(
            key="champion-performance",
            table=[{k: w[k] for k in ("window", "labelled", "scored", "metric", "value",
                                      "champion_test", "drop")} for w in windows],
            description=f"champion v{result['champion_version']} on labelled windows vs its test "
                        "figure")
    if est := result.get("estimated_performance"):
        create_table_artifact(
            key="estimated-performance",
            table=[{"metric": k, "estimate": m["estimate"], "low": m["low"], "high": m["high"],
                    "champion_test": est["baseline"] if k == est["metric"] else None}
                   for k, m in est["metrics"].items()],
            description=f"champion v{result['champion_version']} on {result['batch']} estimated "
                        f"from its scores before labels ({est['rows']} rows, "
                        f"{est['confidence']:.0%} interval); blind to concept drift")
    if result["report_html"] and result["mlflow_run_id"]:
        create_link_artifact(key="drift-report",
                             link=tracking.ui_link(params, result["mlflow_run_id"],
                                                   "drift/report.html"),
                             link_text=f"Evidently report for {result['batch']} (MLflow UI)",
                             description=f"file: {result['report_html']}")


def publish(params: Params, result: dict) -> None:
    """The artifacts, retried on transient API errors; without them the check goes on (the
    verdict is in reports/drift/ and MLflow)."""
    try:
        with_retries(lambda: _publish(params, result), params.services, service="the Prefect API",
                     url=prefect_api(), todo=PREFECT_TODO, transient=(Exception,))
    except ServiceDown as exc:
        get_run_logger().warning("artifacts of %s not published: %s", result["batch"], exc)


@task(name="monitoring-page", cache_policy=NO_CACHE)
def monitoring_page(params: Params, result: dict) -> None:
    """reports/monitoring.html from every check so far, logged with this check's MLflow run
    and linked from a Prefect artifact. A page that cannot be written never undoes a check."""
    logger = get_run_logger()
    try:
        from mlflow import MlflowClient

        page = write_monitoring_page(params.report_dir("drift"), params.path("monitoring_page"),
                                     drift_share=drift_stage.verdict_share(params),
                                     title=f"{params.project.name} monitoring")
        run_id = result.get("mlflow_run_id")
        if run_id:
            MlflowClient().log_artifact(run_id, str(page), artifact_path="monitoring")
            create_link_artifact(key="monitoring-page",
                                 link=tracking.ui_link(params, run_id,
                                                       f"monitoring/{page.name}"),
                                 link_text="drift and performance over time (MLflow UI)",
                                 description=f"file: {page}")
    except Exception as exc:  # the verdict and the decision are already kept
        logger.warning("monitoring page not updated: %s", exc)


@flow(name="drift-check", log_prints=True)
def drift_check(batch: str | None = None) -> dict:
    params = project_params()
    result = check(params, batch)
    publish(params, result)
    decision = decide(params, result)
    alert(params, result, decision)
    monitoring_page(params, result)
    return {**result, "policy": decision}


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.drift_check [BATCH]`: a Prefect API that does not answer is named,
    with what to do, before anything is checked or written."""
    ap = argparse.ArgumentParser(prog="python -m flows.drift_check", description=__doc__)
    ap.add_argument("batch", nargs="?", help="batch name (default: the newest)")
    args = ap.parse_args(argv)
    try:
        require(prefect_api().rstrip("/") + "/health", project_params().services,
                service="the Prefect API", todo=PREFECT_TODO)
    except ServiceDown as exc:
        print(f"drift-check: {exc}", file=sys.stderr)
        sys.exit(2)
    drift_check(args.batch)


if __name__ == "__main__":
    main()
