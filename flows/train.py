"""train flow: ingest -> validate -> split -> train -> evaluate -> register, through DVC.

Each step is the DVC stage of the same name (so dvc.lock records what the run used and
`dvc repro` alone does the same), run as a named Prefect task with its logs. After a
successful run the DVC outputs are pushed and the metrics and promotion decision are
published as a Prefect artifact. After a failed stage the last good outputs are checked out
again; a broken data contract is listed in a `contract-failures` artifact.
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from driftloop.config import Params
from driftloop.contract.check import contract_reason, failures_markdown
from driftloop.dag import read_stages, stages_to_restore
from driftloop.trigger import Trigger, write_trigger
from flows.common import StageFailed, dvc_push, dvc_restore, dvc_stage, project_params


def summary_markdown(evaluation: str, decision: dict) -> str:
    return (f"# Training run\n\n**Trigger:** {decision.get('trigger')}\n\n"
            f"**Decision:** version {decision.get('version')} "
            f"{'promoted to @champion' if decision.get('promote') else 'not promoted'}: "
            f"{decision.get('reason')}\n\n{evaluation}")


def on_stage_failure(params: Params, restore: list[str], stage: str, exc: StageFailed
                     ) -> StageFailed:
    """Restore the last good outputs from `stage` on; for a broken data contract, publish the
    failures as an artifact and return a one-line reason for the run's state message."""
    logger = get_run_logger()
    if restore:
        try:
            dvc_restore(str(params.root), restore)
        except StageFailed as err:
            logger.warning("could not restore earlier outputs: %s", err)
    report_path = params.report_dir("validate") / "report.json"
    if stage != "validate" or not report_path.exists():
        return exc
    report = json.loads(report_path.read_text())
    create_markdown_artifact(key="contract-failures", markdown=failures_markdown(report),
                             description="data contract failures of the training window")
    return StageFailed(f"stage 'validate' failed: {contract_reason(report)}")


@flow(name="train", log_prints=True)
def train(trigger: str = "schedule", reason: str = "") -> dict:
    """Run the training pipeline; `trigger` (schedule, drift, manual) is recorded on the model."""
    logger = get_run_logger()
    params = project_params()
    root = params.root
    logger.info("training run, trigger=%s %s", trigger, reason)
    stages = read_stages(root)
    # register reads the trigger from this file (its --trigger-file in dvc.yaml); without it
    # a stage run by hand records a manual run
    trigger_file = write_trigger(params.path("trigger"), Trigger(trigger, reason))
    try:
        for stage in stages:
            # a retried train task resumes the MLP from its last epoch checkpoint
            retries = 1 if stage.name == "train" else 0
            try:
                dvc_stage.with_options(name=stage.name, retries=retries)(stage, root)
            except StageFailed as exc:
                restore = stages_to_restore(stages, stage.name)
                raise on_stage_failure(params, restore, stage.name, exc) from None
    finally:
        trigger_file.unlink(missing_ok=True)
    dvc_push(root)
    metrics = json.loads((params.report_dir("evaluate") / "metrics.json").read_text())
    decision = json.loads((params.report_dir("register") / "decision.json").read_text())
    evaluation = (params.report_dir("evaluate") / "summary.md").read_text()
    create_markdown_artifact(key="train-summary", markdown=summary_markdown(evaluation, decision),
                             description="test metrics and promotion decision")
    return {"metrics": metrics, "decision": decision}


if __name__ == "__main__":
    train(trigger="manual")
