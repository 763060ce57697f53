"""drift-check flow: Evidently drift of a batch against the champion's training data.

On drift it alerts (log + artifact) and emits `driftloop.drift.detected`; the `train/weekly`
deployment has a trigger on that event (prefect.yaml), so a retraining run starts with
trigger=drift. On no drift, or too little data, it does nothing more.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from flows.common import project_params, resolve_batch
from pipelines import drift as drift_stage

DRIFT_EVENT = "driftloop.drift.detected"


@task(name="drift")
def check(batch: str | None) -> dict:
    params = project_params()
    result = drift_stage.run(params, resolve_batch(params, batch))
    return {**result, "project": params.project.name}


@task(name="alert")
def alert(result: dict) -> None:
    logger = get_run_logger()
    logger.warning("DRIFT in %s: %s", result["batch"], result["reason"])
    create_markdown_artifact(
        key="drift-alert",
        markdown=(f"# Drift detected in `{result['batch']}`\n\n{result['reason']}\n\n"
                  f"Champion version: {result['champion_version']}. "
                  f"Report: `{result['report_html']}`\n\nRetraining was requested."),
        description="drift alert")
    emit_event(event=DRIFT_EVENT,
               resource={"prefect.resource.id": f"driftloop.dataset.{result['project']}"},
               payload={"batch": result["batch"], "share": result["share"],
                        "reason": f"drift in {result['batch']}: {result['reason']}",
                        "drifted_columns": result["drifted_columns"]})


@flow(name="drift-check", log_prints=True)
def drift_check(batch: str | None = None) -> dict:
    result = check(batch)
    if result["columns"]:
        create_table_artifact(key="drift-columns", table=result["columns"],
                              description=f"per-feature drift for {result['batch']}")
    if result["status"] == "drift":
        alert(result)
    return result


if __name__ == "__main__":
    drift_check()
