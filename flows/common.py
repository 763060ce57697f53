"""What the flows share: the project's params, dvc commands run with a timeout, batch lookup."""

from __future__ import annotations

import shlex
import subprocess
import threading
from collections import deque
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from driftloop.config import Params, find_params, load_params
from driftloop.io import find_batch
from driftloop.services import BIN, kill_tree, offline_env

ERROR_PREFIXES = ("validate:", "ingest:", "  - ")  # lines of a stage's own error report
OUTPUT_DRAIN_S = 5  # after the command ends, the wait for the rest of its output


class StageFailed(RuntimeError):
    pass


class StageTimeout(StageFailed):
    """A stage or dvc command that ran past its params.yaml timeout (and was killed)."""


def project_params() -> Params:
    return load_params(find_params())


def run_logged(cmd: list[str], cwd: Path, env: dict[str, str], what: str, *,
               timeout: float | None = None, knob: str = "", logger=None) -> None:
    """Run `cmd`, streaming its output to `logger` (default: the Prefect run's); on failure
    raise with its tail. After `timeout` seconds it and every process it started are killed
    and StageTimeout names it and the params.yaml `knob` that sets the limit."""
    logger = logger or get_run_logger()
    tail: deque[str] = deque(maxlen=40)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                logger.info(line)
                tail.append(line)

    reader = threading.Thread(target=pump, name=f"output of {what}", daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        n = kill_tree(proc.pid)
        proc.wait()
        reader.join(OUTPUT_DRAIN_S)
        command = shlex.join([Path(cmd[0]).name, *cmd[1:]])
        raise StageTimeout(
            f"{what} did not finish within {timeout:g}s: killed `{command}` and the {n - 1} "
            f"process(es) it started; if it needs longer, raise {knob or 'its timeout'} in "
            "params.yaml. Last output:\n" + "\n".join(list(tail)[-12:])) from None
    reader.join(OUTPUT_DRAIN_S)  # a process that escaped the tree may hold the pipe: don't wait
    if proc.returncode != 0:
        errors = [t for t in tail if t.startswith(ERROR_PREFIXES) or "rror" in t]
        raise StageFailed(f"{what} failed (exit {proc.returncode}): "
                          + ("\n".join(errors[-12:]) or "\n".join(tail)))


def _dvc(*args: str) -> list[str]:
    """A dvc command line using the dvc of this interpreter's environment."""
    return [str(BIN / "dvc"), *args]


@task(cache_policy=NO_CACHE)
def dvc_restore(params: Params, stages: list[str]) -> None:
    """After a failed stage, put back the outputs DVC deleted before running it (the last good
    ones recorded in dvc.lock), so the validated window, splits and model stay as they were."""
    run_logged(_dvc("checkout", "--force", "--allow-missing", *stages), params.root,
               offline_env(), "dvc checkout", timeout=params.timeouts.dvc_s, knob="timeouts.dvc_s")


@task(cache_policy=NO_CACHE)
def dvc_push(params: Params) -> None:
    run_logged(_dvc("push", "-q"), params.root, offline_env(), "dvc push",
               timeout=params.timeouts.dvc_s, knob="timeouts.dvc_s")


def resolve_batch(params: Params, batch: str | None) -> Path | None:
    """A batch name is looked up in the landing, then the raw layer."""
    return find_batch(batch, [params.path("landing"), params.path("raw")])
