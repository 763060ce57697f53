"""What the flows share: the project root, a DVC stage as a task, batch lookup."""

from __future__ import annotations

import subprocess
from collections import deque
from pathlib import Path

from prefect import get_run_logger, task

from driftloop.services import BIN, offline_env
from pipelines.config import Params, find_params, load_params

MLFLOW_STAGES = ("train", "evaluate", "register")  # their outputs name MLflow runs and versions
TRAIN_STAGES = ("ingest", "validate", "split", "train", "evaluate", "register")


def stages_to_restore(failed: str) -> list[str]:
    """After `failed` fails, the stages whose last good outputs go back (pure): it and every
    later one, never `ingest`, whose raw layer is append-only and must keep new files."""
    return [s for s in TRAIN_STAGES[TRAIN_STAGES.index(failed):] if s != "ingest"]


class StageFailed(RuntimeError):
    pass


def project_params() -> Params:
    return load_params(find_params())


def run_logged(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    """Run `cmd`, streaming its output to the Prefect log; on failure raise with its tail."""
    logger = get_run_logger()
    tail: deque[str] = deque(maxlen=40)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            logger.info(line)
            tail.append(line)
    if proc.wait() != 0:
        errors = [t for t in tail if t.startswith(("validate:", "ingest:", "  - ")) or "rror" in t]
        raise StageFailed(f"{what} failed (exit {proc.returncode}): "
                          + ("\n".join(errors[-12:]) or "\n".join(tail)))


def _dvc(*args: str) -> list[str]:
    """A dvc command line using the dvc of this interpreter's environment."""
    return [str(BIN / "dvc"), *args]


@task(tags=["dvc"])
def dvc_stage(stage: str, root: str, trigger: str, reason: str) -> None:
    """`dvc repro --single-item <stage>`: DVC skips it when nothing it depends on changed.

    The stages that write to MLflow never take their outputs from DVC's run cache: a cached
    copy names an MLflow run that may be gone (a reset store) and would log into an old run."""
    env = offline_env(DRIFTLOOP_TRIGGER=trigger, DRIFTLOOP_TRIGGER_REASON=reason)
    no_cache = ["--no-run-cache"] if stage in MLFLOW_STAGES else []
    run_logged(_dvc("repro", "--single-item", *no_cache, stage), Path(root), env, f"stage {stage!r}")


@task(tags=["dvc"])
def dvc_restore(root: str, stages: list[str]) -> None:
    """After a failed stage, put back the outputs DVC deleted before running it (the last good
    ones recorded in dvc.lock), so the validated window, splits and model stay as they were."""
    run_logged(_dvc("checkout", "--force", "--allow-missing", *stages), Path(root), offline_env(),
               "dvc checkout")


@task(tags=["dvc"])
def dvc_push(root: str) -> None:
    run_logged(_dvc("push", "-q"), Path(root), offline_env(), "dvc push")


def resolve_batch(params: Params, batch: str | None) -> Path | None:
    """A batch given by name is looked up in landing, then raw; a path is taken as is."""
    if not batch:
        return None
    p = Path(batch)
    if p.is_absolute() or p.exists():
        return p.resolve()
    for folder in (params.path("landing"), params.path("raw")):
        if (folder / p.name).exists():
            return folder / p.name
    raise FileNotFoundError(f"batch {batch!r} is in neither {params.path('landing')} nor "
                            f"{params.path('raw')}; pass a file path or a landed batch name")
