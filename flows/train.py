"""train flow: ingest -> validate -> split -> train -> evaluate -> register, through DVC.

Each step is the DVC stage of the same name (so dvc.lock records what the run used and
`dvc repro` alone does the same), run as a named Prefect task with its logs; the run's DVC
commands go to one long-lived dvc process (flows/common.py DvcSession). After a
successful run the DVC outputs are pushed and the metrics and promotion decision are
published as a Prefect artifact. After a failed stage the last good outputs are checked out
again; a broken data contract is listed in a `contract-failures` artifact.

The whole run holds the pipeline lock (driftloop/lock.py): a second training (another flow
run, `dvc repro` in a shell) waits up to `concurrency.train_wait_s` or stops naming the
holder, and the stages this run starts carry its token, so they proceed under its lock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from driftloop.config import Params
from driftloop.contract.check import contract_reason, failures_markdown
from driftloop.dag import Stage, read_stages, stages_to_restore
from driftloop.lock import TOKEN_ENV, pipeline_lock
from driftloop.services import offline_env
from driftloop.trigger import Trigger, write_trigger
from flows.common import StageFailed, dvc_push, dvc_restore, dvc_session, project_params, run_dvc

# what dvc says when another dvc process holds the repository lock, or an output's read/write lock
DVC_BUSY = ("Unable to acquire lock", "is busy, it is being blocked by")


def check_dvc_lock(root: Path) -> str | None:
    """Raise StageFailed, naming the file and the fix, when `dvc.lock` cannot be parsed; a
    note when it is missing or looks cut short (DVC then reruns the stages it cannot vouch
    for, which is safe); None when it is fine."""
    path = root / "dvc.lock"
    if not path.exists():
        return f"{path} is missing: every stage runs again and writes it anew"
    text = path.read_text(errors="replace")
    try:
        lock = yaml.safe_load(text)
        ok = lock is None or isinstance(lock.get("stages", {}), dict)
        why = "not a DVC lock file"
    except (yaml.YAMLError, AttributeError) as exc:
        ok, why = False, " ".join(str(exc).split())[:160]
    if not ok:
        raise StageFailed(f"{path} is damaged ({why}): restore it with `git checkout dvc.lock`, "
                          "or delete it to run every stage again, then rerun the train flow")
    if text and not text.endswith("\n"):
        return (f"{path} looks cut short (no final newline): DVC reruns the stages whose "
                "entries are incomplete and writes it anew")
    return None


def retry_while_dvc_busy(call: Callable[[], None], what: str, params: Params) -> None:
    """`call()`, retried with backoff while another dvc process holds the repository lock;
    then a StageFailed that says so (DVC's own message names neither the cause nor the fix)."""
    retries, backoff = params.concurrency.dvc_lock_retries, params.services.backoff_s
    for attempt in range(retries + 1):
        try:
            return call()
        except StageFailed as exc:
            if not any(busy in str(exc) for busy in DVC_BUSY):
                raise
            if attempt == retries:
                raise StageFailed(
                    f"{what} could not start: another DVC process holds the repository "
                    f"({params.root / '.dvc/tmp'}) through {retries + 1} attempts: a `dvc repro`, "
                    "`dvc push` or `dvc status` in a shell? Let it finish, then run the flow "
                    f"again. DVC said: {exc}") from None
            wait = backoff * 2 ** attempt
            get_run_logger().warning("%s: another dvc process holds the repository; retrying "
                                     "in %.1f s", what, wait)
            time.sleep(wait)


# no task tags: Prefect asks the server for a tag concurrency slot for every tagged task
# run, which cost 1-2.5 s per stage; the pipeline lock already keeps trainings apart
@task(cache_policy=NO_CACHE)
def dvc_stage(stage: Stage, params: Params, token: str) -> None:
    """`dvc repro --single-item <stage>` (through the flow's DvcSession): DVC skips it when
    nothing it depends on changed. The stage runs under this flow's pipeline lock (`token`)
    and is killed after `timeouts.stage_s`.

    The stages that write to MLflow never take their outputs from DVC's run cache: a cached
    copy names an MLflow run that may be gone (a reset store) and would log into an old run."""
    no_cache = ["--no-run-cache"] if stage.writes_mlflow else []
    args = ["repro", "--single-item", *no_cache, stage.name]
    what = f"stage {stage.name!r}"
    env = offline_env(**{TOKEN_ENV: token})
    retry_while_dvc_busy(lambda: run_dvc(args, params.root, env, what,
                                         timeout=params.timeouts.stage_s,
                                         knob="timeouts.stage_s"), what, params)


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
            dvc_restore(params, restore)
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
    logger.info("training run, trigger=%s %s", trigger, reason)
    what = f"train flow run {runtime.flow_run.name} ({runtime.flow_run.id})"
    with pipeline_lock(params, what, wait_s=params.concurrency.train_wait_s) as holder:
        if note := check_dvc_lock(params.root):
            logger.warning(note)
        stages = read_stages(params.root)
        # one dvc process for the run's dvc commands; its stage server imports ahead
        with dvc_session(params.root, [s.cmd for s in stages]):
            return _train(params, stages, Trigger(trigger, reason), holder.token)


def _train(params: Params, stages: list[Stage], trigger: Trigger, token: str) -> dict:
    # register reads the trigger from this file (its --trigger-file in dvc.yaml); without it
    # a stage run by hand records a manual run
    trigger_file = write_trigger(params.path("trigger"), trigger)
    try:
        for stage in stages:
            # a retried train task resumes the MLP from its last epoch checkpoint
            retries = 1 if stage.name == "train" else 0
            try:
                dvc_stage.with_options(name=stage.name, retries=retries)(stage, params, token)
            except StageFailed as exc:
                restore = stages_to_restore(stages, stage.name)
                raise on_stage_failure(params, restore, stage.name, exc) from None
    finally:
        trigger_file.unlink(missing_ok=True)
    retry_while_dvc_busy(lambda: dvc_push(params), "dvc push", params)
    metrics = json.loads((params.report_dir("evaluate") / "metrics.json").read_text())
    decision = json.loads((params.report_dir("register") / "decision.json").read_text())
    evaluation = (params.report_dir("evaluate") / "summary.md").read_text()
    create_markdown_artifact(key="train-summary", markdown=summary_markdown(evaluation, decision),
                             description="test metrics and promotion decision")
    return {"metrics": metrics, "decision": decision}


if __name__ == "__main__":
    train(trigger="manual")
