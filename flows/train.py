"""train flow: ingest -> validate -> split -> train -> evaluate -> register, through DVC.

Each step is the DVC stage of the same name (so dvc.lock records what the run used and
`dvc repro` alone does the same), run as a named Prefect task with its logs. After a
successful run the DVC outputs are pushed and the metrics and promotion decision are
published as a Prefect artifact.
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.common import TRAIN_STAGES, dvc_push, dvc_stage, project_params


def summary_markdown(evaluation: str, decision: dict) -> str:
    return (f"# Training run\n\n**Trigger:** {decision.get('trigger')}\n\n"
            f"**Decision:** version {decision.get('version')} "
            f"{'promoted to @champion' if decision.get('promote') else 'not promoted'}: "
            f"{decision.get('reason')}\n\n{evaluation}")


@flow(name="train", log_prints=True)
def train(trigger: str = "schedule", reason: str = "") -> dict:
    """Run the training pipeline; `trigger` (schedule, drift, manual) is recorded on the model."""
    logger = get_run_logger()
    params = project_params()
    root = str(params.root)
    logger.info("training run, trigger=%s %s", trigger, reason)
    for stage in TRAIN_STAGES:
        # a retried train task resumes the MLP from its last epoch checkpoint
        retries = 1 if stage == "train" else 0
        dvc_stage.with_options(name=stage, retries=retries)(stage, root, trigger, reason)
    dvc_push(root)
    metrics = json.loads((params.report_dir("evaluate") / "metrics.json").read_text())
    decision = json.loads((params.report_dir("register") / "decision.json").read_text())
    evaluation = (params.report_dir("evaluate") / "summary.md").read_text()
    create_markdown_artifact(key="train-summary", markdown=summary_markdown(evaluation, decision),
                             description="test metrics and promotion decision")
    return {"metrics": metrics, "decision": decision}


if __name__ == "__main__":
    train(trigger="manual")
