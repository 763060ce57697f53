"""One training run at a time, and one move of @champion at a time: fcntl locks on files
under `paths.locks`, each naming its holder inside.

The train flow holds the pipeline lock for its whole run and hands its token to the
`dvc repro` stages it starts (environment variable `DRIFTLOOP_LOCK_TOKEN`). A stage started
any other way (`dvc repro` in a shell) takes the lock for its own run, or stops at once
naming the holder. The kernel drops an fcntl lock when its process dies, so a killed run
never leaves a stale lock behind; the holder text left in the file is then ignored.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from driftloop.config import Params
from driftloop.retry import ServiceDown

TOKEN_ENV = "DRIFTLOOP_LOCK_TOKEN"
# set by the flow's stage server for a stage it forked (driftloop/dvcserve.py WAIT_ENV, which
# imports nothing of driftloop's, so the stages do not depend on it): "<s it waited for the
# server> <s of them for the stage's own LAZY_IMPORTS>"
WAIT_ENV = "DRIFTLOOP_STAGE_SERVER_WAIT"
PIPELINE = "pipeline.lock"
CHAMPION = "champion.lock"
POLL_S = 0.2
CHAMPION_WAIT_S = 30.0  # a move of @champion takes milliseconds; longer means a stuck holder


class LockBusy(RuntimeError):
    """Someone else holds the lock; the message names them and what to do."""

    def __init__(self, message: str, holder: Holder | None):
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    what: str     # "train flow run <id>", "stage train (dvc repro)", ...
    pid: int
    host: str
    since: str    # ISO time the lock was taken
    token: str    # handed to the processes that act for the holder

    def describe(self) -> str:
        return f"{self.what} (pid {self.pid} on {self.host}, since {self.since})"


def lock_path(params: Params, name: str) -> Path:
    """A lock file of this project: a runtime file, never a pipeline input or output."""
    return params.path("locks") / name


def read_holder(path: Path) -> Holder | None:
    """Who wrote `path` last; None when it is empty or unreadable (a holder still writing)."""
    try:
        return Holder(**json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None


@contextmanager
def hold(path: Path, what: str, *, wait_s: float = 0.0, token: str | None = None
         ) -> Iterator[Holder]:
    """Hold the lock at `path` for the block. When it is busy: proceed without taking it if
    `token` is the holder's (the holder acts through us), else wait up to `wait_s` seconds
    and raise LockBusy naming the holder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        deadline = time.monotonic() + wait_s
        while not _try_lock(f):
            holder = read_holder(path)
            if token and holder is not None and holder.token == token:
                yield holder
                return
            if time.monotonic() >= deadline:
                raise LockBusy(busy_message(path, what, holder, wait_s), holder)
            time.sleep(POLL_S)
        me = Holder(what=what, pid=os.getpid(), host=socket.gethostname(),
                    since=datetime.now(UTC).isoformat(timespec="seconds"), token=uuid.uuid4().hex)
        try:
            f.seek(0)
            f.truncate()
            f.write(json.dumps(asdict(me)))
            f.flush()
            yield me
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


def _try_lock(f) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def busy_message(path: Path, what: str, holder: Holder | None, wait_s: float) -> str:
    who = holder.describe() if holder else "another process (it is still writing its name)"
    waited = f" after waiting {wait_s:g} s" if wait_s else ""
    return (f"{what} cannot start{waited}: {who} holds {path}. Let it finish (or stop it) "
            "and run again; the lock is released when its holder exits")


@contextmanager
def pipeline_lock(params: Params, what: str, *, wait_s: float = 0.0) -> Iterator[Holder]:
    """The training pipeline's lock, for a flow run or a stage. A stage whose environment
    carries the running flow's token proceeds under the flow's lock."""
    with hold(lock_path(params, PIPELINE), what, wait_s=wait_s,
              token=os.environ.get(TOKEN_ENV)) as holder:
        yield holder


@contextmanager
def champion_lock(params: Params, what: str) -> Iterator[Holder]:
    """Held for the short read-check-move of @champion (promotion, rollback)."""
    with hold(lock_path(params, CHAMPION), what, wait_s=CHAMPION_WAIT_S) as holder:
        yield holder


@contextmanager
def stage_run(params: Params, stage: str) -> Iterator[None]:
    """What a stage's main() runs under: the pipeline lock (or the flow's, given its token).
    A busy lock or a service that stays down ends the process with exit code 1 and one line
    naming the holder or the service, never a traceback. When it ends well, the stage's own
    time is logged: the time under the lock, without process start-up or DVC's bookkeeping;
    for a stage the flow's stage server started, also how long it waited for that server and
    how much of that was the server importing the stage's own LAZY_IMPORTS (driftloop.dvcserve)."""
    try:
        with pipeline_lock(params, f"stage {stage!r} (dvc repro)"):
            t0 = time.perf_counter()
            yield
            waited = os.environ.get(WAIT_ENV, "").split()
            logging.getLogger(__name__).info(
                "stage %r done in %.2f s%s", stage, time.perf_counter() - t0,
                f" (it waited {float(waited[0]):.2f} s for the stage server, "
                f"{float(waited[1]):.2f} s of them for its own LAZY_IMPORTS)"
                if len(waited) == 2 else "")
    except (LockBusy, ServiceDown) as exc:
        print(f"{stage}: {exc}", file=sys.stderr)
        sys.exit(1)


def leave(code: int = 0) -> NoReturn:
    """End a finished stage process without the interpreter's teardown, which frees every
    module's objects one by one: about 1 s once torch, MLflow and XGBoost are loaded, paid by
    every stage of every run. Everything the stage wrote is closed and renamed into place by
    then. As on a normal exit, other non-daemon threads are joined first and the atexit
    handlers run (MLflow's and logging's among them), then the standard streams are flushed."""
    import atexit
    import threading

    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # noqa: SLF001 (the handlers a normal exit runs)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
