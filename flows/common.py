"""What the flows share: the project's params, a DVC stage as a task, batch lookup."""

from __future__ import annotations

import subprocess
from collections import deque
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from driftloop.config import Params, find_params, load_params
from driftloop.dag import Stage
from driftloop.io import find_batch
from driftloop.services import BIN, offline_env

ERROR_PREFIXES = ("validate:", "ingest:", "  - ")  # lines of a stage's own error report


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
        errors = [t for t in tail if t.startswith(ERROR_PREFIXES) or "rror" in t]
        raise StageFailed(f"{what} failed (exit {proc.returncode}): "
                          + ("\n".join(errors[-12:]) or "\n".join(tail)))


def _dvc(*args: str) -> list[str]:
    """A dvc command line using the dvc of this interpreter's environment."""
    return [str(BIN / "dvc"), *args]


@task(tags=["dvc"], cache_policy=NO_CACHE)
def dvc_stage(stage: Stage, root: Path) -> None:
    """`dvc repro --single-item <stage>`: DVC skips it when nothing it depends on changed.

    The stages that write to MLflow never take their outputs from DVC's run cache: a cached
    copy names an MLflow run that may be gone (a reset store) and would log into an old run."""
    no_cache = ["--no-run-cache"] if stage.writes_mlflow else []
    run_logged(_dvc("repro", "--single-item", *no_cache, stage.name), root, offline_env(),
               f"stage {stage.name!r}")


@task(tags=["dvc"], cache_policy=NO_CACHE)
def dvc_restore(root: Path, stages: list[str]) -> None:
    """After a failed stage, put back the outputs DVC deleted before running it (the last good
    ones recorded in dvc.lock), so the validated window, splits and model stay as they were."""
    run_logged(_dvc("checkout", "--force", "--allow-missing", *stages), root, offline_env(),
               "dvc checkout")


@task(tags=["dvc"], cache_policy=NO_CACHE)
def dvc_push(root: Path) -> None:
    run_logged(_dvc("push", "-q"), root, offline_env(), "dvc push")


def resolve_batch(params: Params, batch: str | None) -> Path | None:
    """A batch name is looked up in the landing, then the raw layer."""
    return find_batch(batch, [params.path("landing"), params.path("raw")])
