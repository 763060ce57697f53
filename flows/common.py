"""What the flows share: the project's params, dvc commands run with a timeout, batch lookup."""

from __future__ import annotations

import json
import queue
import secrets
import shlex
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from driftloop import dvcserve
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
        raise timed_out(cmd, what, timeout, n - 1, knob, tail) from None
    reader.join(OUTPUT_DRAIN_S)  # a process that escaped the tree may hold the pipe: don't wait
    if proc.returncode != 0:
        raise failed(what, proc.returncode, tail)


def timed_out(cmd: list[str], what: str, timeout: float | None, killed: int, knob: str,
              tail: deque[str]) -> StageTimeout:
    command = shlex.join([Path(cmd[0]).name, *cmd[1:]])
    return StageTimeout(
        f"{what} did not finish within {timeout:g}s: killed `{command}` and the {killed} "
        f"process(es) it started; if it needs longer, raise {knob or 'its timeout'} in "
        "params.yaml. Last output:\n" + "\n".join(list(tail)[-12:]))


def failed(what: str, code: int, tail: deque[str]) -> StageFailed:
    errors = [t for t in tail if t.startswith(ERROR_PREFIXES) or "rror" in t]
    return StageFailed(f"{what} failed (exit {code}): "
                       + ("\n".join(errors[-12:]) or "\n".join(tail)))


def _dvc(*args: str) -> list[str]:
    """A dvc command line using the dvc of this interpreter's environment."""
    return [str(BIN / "dvc"), *args]


class DvcSession:
    """The DVC commands of one flow run, run one after another by one long-lived `dvc`
    (driftloop/dvcserve.py) instead of a `dvc` process each: DVC's start, about 0.5 s, is paid
    once per flow. Each command is still `dvc <args>` (same lock, output and exit code), logged
    and timed out as `run_logged` does; after a timeout the process is killed with everything
    it started, and the next command starts a new one."""

    def __init__(self, root: Path, preload: tuple[str, ...] = ()) -> None:
        self.root = root
        self.preload = preload  # stage modules its stage server imports ahead (dvcserve.py)
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.marker = ""
        self.busy = threading.Lock()  # one command at a time, as a shell would run them

    def _start(self) -> subprocess.Popen:
        self.marker = f"driftloop-dvc-exit-{secrets.token_hex(8)}"
        proc = subprocess.Popen([sys.executable, dvcserve.__file__, self.marker, *self.preload],
                                cwd=self.root,
                                env=offline_env(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = self.lines = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line.rstrip())
            lines.put(None)  # it ended

        threading.Thread(target=pump, name="output of dvc", daemon=True).start()
        self.proc = proc
        return proc

    def run(self, args: list[str], env: dict[str, str], what: str, *,
            timeout: float | None = None, knob: str = "", logger=None) -> None:
        logger = logger or get_run_logger()
        with self.busy:
            proc = self._send({"args": args, "env": env})
            tail: deque[str] = deque(maxlen=40)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                    line = self.lines.get(timeout=wait)
                except queue.Empty:
                    n = kill_tree(proc.pid)
                    proc.wait()
                    self.proc = None
                    raise timed_out(_dvc(*args), what, timeout, n - 1, knob, tail) from None
                if line is None:  # it died (killed from outside?): its exit code
                    self.proc = None
                    raise failed(what, proc.wait(), tail)
                line, done, code_text = line.partition(self.marker)
                if line.strip():  # (output with no newline of its own ends before the marker)
                    logger.info(line)
                    tail.append(line)
                if done:
                    code = int(code_text)
                    break
        if code != 0:
            raise failed(what, code, tail)

    def _send(self, request: dict) -> subprocess.Popen:
        """The request written to the running dvc, or to a new one when it has ended."""
        line = json.dumps(request) + "\n"
        proc = self.proc if self.proc and self.proc.poll() is None else self._start()
        try:
            return _write(proc, line)
        except OSError:  # it ended between the check and the write: once more, on a new one
            self.proc = None
            return _write(self._start(), line)

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()  # end of its requests: it exits
            proc.wait(timeout=OUTPUT_DRAIN_S)
        except (OSError, subprocess.TimeoutExpired):
            kill_tree(proc.pid)
            proc.wait()


def _write(proc: subprocess.Popen, line: str) -> subprocess.Popen:
    assert proc.stdin is not None
    proc.stdin.write(line)
    proc.stdin.flush()
    return proc


_SESSIONS: dict[Path, DvcSession] = {}


@contextmanager
def dvc_session(root: Path, stage_cmds: list[str] | tuple[str, ...] = ()
                ) -> Iterator[DvcSession]:
    """While open, `run_dvc` in `root` goes through one long-lived dvc (DvcSession); the
    modules of `stage_cmds` (`python -m <module>` commands, in the order they will run) are
    imported ahead by its stage server, so those stages start warm."""
    key = root.resolve()
    preload = tuple(dict.fromkeys(m for c in stage_cmds if (m := dvcserve.module_of(c))))
    session = _SESSIONS[key] = DvcSession(root, preload)
    try:
        yield session
    finally:
        _SESSIONS.pop(key, None)
        session.close()


def run_dvc(args: list[str], root: Path, env: dict[str, str], what: str, *,
            timeout: float | None = None, knob: str = "", logger=None) -> None:
    """`dvc <args>` in `root`, logged, failing and timing out as `run_logged`: through the
    flow's DvcSession when one is open there, else as a process of its own."""
    if session := _SESSIONS.get(root.resolve()):
        session.run(args, env, what, timeout=timeout, knob=knob, logger=logger)
    else:
        run_logged(_dvc(*args), root, env, what, timeout=timeout, knob=knob, logger=logger)


@task(cache_policy=NO_CACHE)
def dvc_restore(params: Params, stages: list[str]) -> None:
    """After a failed stage, put back the outputs DVC deleted before running it (the last good
    ones recorded in dvc.lock), so the validated window, splits and model stay as they were."""
    run_dvc(["checkout", "--force", "--allow-missing", *stages], params.root, offline_env(),
            "dvc checkout", timeout=params.timeouts.dvc_s, knob="timeouts.dvc_s")


@task(cache_policy=NO_CACHE)
def dvc_push(params: Params) -> None:
    run_dvc(["push", "-q"], params.root, offline_env(), "dvc push",
            timeout=params.timeouts.dvc_s, knob="timeouts.dvc_s")


def resolve_batch(params: Params, batch: str | None) -> Path | None:
    """A batch name is looked up in the landing, then the raw layer."""
    return find_batch(batch, [params.path("landing"), params.path("raw")])
