"""One long-lived `dvc` for the DVC commands of one flow run, one command after another.

A `dvc` process spends about 0.5 s starting (Python, DVC's imports, its config) before it does
anything; a train flow runs seven DVC commands (a `dvc repro` per stage, then `dvc push`).
Here each command is `dvc.cli.main(args)`, which is what the `dvc` script runs, so it behaves
as `dvc <args>` in a shell does: the same repository lock, output and exit code, and a fresh
`Repo` per command. Only the start is shared.

Stages start warm, too. A stage process spends 1-2.5 s importing (pandas, pyarrow, pydantic,
scikit-learn, MLflow, torch, XGBoost, Great Expectations) before its own work. Given modules
to preload, this process forks a *stage server* before it imports DVC, while it still runs
one thread. The server imports each stage's module and the libraries it names in
`LAZY_IMPORTS`, in the flow's stage order, while the earlier stages run. When DVC runs a
stage command of the form `python -m <module> [args]` (the python of this environment, in
the server's folder, with the same PYTHON* variables), the server forks a child that runs
the module as `python -m` would: the command's argv, environment, folder and stdio, its exit
code or signal. Any other command, or one the server cannot take, starts as a process as
before. A child of the server is still a descendant of this process, so a stage timeout's
`kill_tree` reaches it; when this process ends, the server kills its children and ends.

Protocol (flows/common.py's DvcSession speaks it): one JSON object per line on stdin,
`{"args": [...], "env": {...}}` (the command's whole environment: a stage DVC starts inherits
it); the command's output, and its stage's, on stdout; then the line `<marker> <exit code>`,
with the marker given as the first argument; the modules to preload follow it. End of stdin
ends the process.

It imports nothing of driftloop's, so it runs from its own file.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

# set for a stage the server forked: "<s waited for the server> <s of them for the stage's own
# LAZY_IMPORTS>"; driftloop.lock.stage_run logs it beside the stage's own time (the same name
# as driftloop.lock.WAIT_ENV, a test checks: the stages must not import this file)
WAIT_ENV = "DRIFTLOOP_STAGE_SERVER_WAIT"
SHELL_SYNTAX = set("|&;<>()$`\\*?[]{}~!#\n")  # a command holding any of these needs a shell


def module_of(cmd: str) -> str | None:
    """The module a `python -m <module> ...` command runs (pure), before any interpolation."""
    words = cmd.split()
    if len(words) < 3 or words[0] not in ("python", "python3") or words[1] != "-m":
        return None
    return words[2] if all(part.isidentifier() for part in words[2].split(".")) else None


def stage_module(cmd: str) -> tuple[str, list[str]] | None:
    """(module, args) for a stage command `python -m <module> [args]` that needs no shell
    (pure); None for anything else (a pipe, a redirect, a variable, another program)."""
    if SHELL_SYNTAX & set(cmd) or module_of(cmd) is None:
        return None
    try:
        words = shlex.split(cmd)
    except ValueError:
        return None
    return words[2], words[3:]


def python_env(env: dict[str, str]) -> dict[str, str]:
    """The variables that change what Python imports or how (PYTHONPATH, PYTHONHASHSEED...)."""
    return {k: v for k, v in env.items() if k.startswith("PYTHON")}


# ---------------------------------------------------------------- the stage server (a fork)
class StageServer:
    """This process's side of the forked stage server: one request at a time."""

    def __init__(self, preload: list[str]) -> None:
        ours, theirs = socket.socketpair()
        self.folder = os.getcwd()
        self.env = python_env(dict(os.environ))
        pid = os.fork()
        if pid == 0:  # the server
            ours.close()
            _serve(theirs, preload)  # never returns
        theirs.close()
        self.pid = pid
        self.sock = ours
        self.replies = ours.makefile("r", encoding="utf-8")

    def takes(self, cmd: str, cwd: str, env: dict[str, str]) -> tuple[str, list[str]] | None:
        """(module, args) when the server can run `cmd` as `python -m` would, else None."""
        found = stage_module(cmd)
        if found is None or self.sock is None:
            return None
        python = shutil.which(cmd.split()[0], path=env.get("PATH", ""))
        same_python = python is not None and \
            Path(python).parent.resolve() == Path(sys.executable).parent.resolve()
        same_folder = os.path.realpath(cwd) == os.path.realpath(self.folder)
        return found if same_python and same_folder and python_env(env) == self.env else None

    def run(self, module: str, args: list[str], cwd: str, env: dict[str, str]) -> int | None:
        """The stage's exit code (negative: the signal that ended it); None when the server
        was gone before it took the request (the caller then starts the command itself)."""
        request = {"module": module, "args": args, "cwd": cwd, "env": env, "sent": time.time()}
        try:
            self.sock.sendall((json.dumps(request) + "\n").encode())
        except OSError:
            self.close()
            return None
        try:
            reply = self.replies.readline()
        except OSError:
            reply = ""
        if not reply:  # it ended while the stage ran: the stage failed, it is not run again
            self.close()
            print(f"the stage server (pid {self.pid}) ended while `python -m {module}` ran "
                  f"in {cwd}: was it killed? Run the flow again (a new server starts), or the "
                  f"stage alone with `dvc repro`, which starts it as a process of its own",
                  file=sys.stderr, flush=True)
            return 1
        return int(json.loads(reply)["exit"])

    def close(self) -> None:
        if self.sock is not None:
            self.replies.close()  # (it holds the socket open too)
            self.sock.close()
            self.sock = None


def _serve(sock: socket.socket, preload: list[str]) -> None:
    """The server: import `preload` (each module, then its LAZY_IMPORTS), one at a time and
    between two imports take any request that came in; a request waits for its own module.
    An import cannot be interrupted, so while no stage runs the server imports only the next
    stage's modules and then waits for its request; while a stage runs, it imports ahead.
    A stage's exit is reported as it happens, from the SIGCHLD handler, even in the middle of
    an import. Ends (killing its stage) when the other side closes."""
    import selectors
    from collections import deque

    code = 0
    running: list[int] = []  # the pid of the stage now running, if any

    def reap(*_) -> None:
        if not running:
            return
        done, status = os.waitpid(running[0], os.WNOHANG)
        if done:
            running.clear()
            try:
                sock.sendall((json.dumps({"exit": os.waitstatus_to_exitcode(status)}) + "\n")
                             .encode())
            except OSError:
                pass  # the other side ended: the main loop sees it

    try:
        # only the standard streams and this socket, as DVC starts a stage (close_fds): not
        # the dvc process's copy of its request pipe
        os.closerange(3, sock.fileno())
        os.closerange(sock.fileno() + 1, os.sysconf("SC_OPEN_MAX"))
        sys.path[0] = os.getcwd()  # as `python -m` in this folder
        queue = deque(preload)
        imported: set[str] = set()
        lazy_spans: dict[str, tuple[float, float]] = {}  # when each module's LAZY_IMPORTS loaded

        def load(module: str) -> None:
            if module in imported:
                return
            imported.add(module)
            try:
                mod = __import__(module, fromlist=["_"])
                start = time.time()
                for lib in getattr(mod, "LAZY_IMPORTS", ()):
                    __import__(lib)
                lazy_spans[module] = (start, time.time())
            except BaseException:  # noqa: BLE001 - the stage's own run shows the error
                pass

        signal.signal(signal.SIGCHLD, reap)
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ)
        buffer = b""
        served = 0  # requests taken: the next one is expected for preload[served]
        while True:
            ahead = queue and (running or preload.index(queue[0]) <= served)
            if not sel.select(0 if ahead else None):
                if ahead:
                    load(queue.popleft())
                continue
            data = sock.recv(65536)
            if not data:
                if running:
                    os.kill(running[0], signal.SIGKILL)  # the dvc side ended: so does its stage
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                served += 1
                load(request["module"])
                sent, now = request.get("sent", time.time()), time.time()
                start, end = lazy_spans.get(request["module"], (now, now))
                own = max(0.0, min(now, end) - max(sent, start))
                request["env"][WAIT_ENV] = f"{max(0.0, now - sent):.3f} {own:.3f}"
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    sock.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                    _run_stage(request["module"], request["args"], request["cwd"],
                               request["env"])
                running.append(pid)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    except BaseException:  # noqa: BLE001 - the other side sees the socket close
        code = 1
    finally:
        os._exit(code)


def _run_stage(module: str, args: list[str], cwd: str, env: dict[str, str]) -> None:
    """In the child: become `python -m module args` in `cwd` with `env`; never returns."""
    import atexit
    import random
    import runpy
    import traceback

    code = 1
    try:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.modules.pop(module, None)  # run afresh as __main__, as `python -m` does
        random.seed()  # each stage its own random state, not the server's
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback, exit 1
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _patch_dvc(server: StageServer) -> None:
    """DVC's stage runner hands the commands the server can take to it."""
    import dvc.stage.run as stage_run
    from dvc.stage.exceptions import StageCmdFailedError

    started = stage_run._run

    def run(executable, cmd, **kwargs):
        cwd, env = kwargs.get("cwd") or os.getcwd(), kwargs.get("env") or dict(os.environ)
        found = server.takes(cmd, cwd, env)
        code = None if found is None else server.run(*found, cwd, env)
        if code is None:
            return started(executable, cmd, **kwargs)
        if code != 0:
            raise StageCmdFailedError(cmd, code)

    stage_run._run = run


def serve(marker: str, preload: list[str]) -> None:
    # the stages DVC starts inherit stdin: they get /dev/null, not the next request
    requests = os.fdopen(os.dup(0), "r")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    # forked now, while this process runs one thread and has imported next to nothing
    server = StageServer(preload) if preload else None
    sys.stdout.reconfigure(line_buffering=True)  # DVC's lines in order with its stage's

    from dvc.cli import main

    if server is not None:
        _patch_dvc(server)
    for line in requests:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(request["env"])
        try:
            code = main(request["args"])
        except SystemExit as exc:  # `--help`, `--version`
            code = exc.code if isinstance(exc.code, int) else 1
        sys.stderr.flush()
        print(f"{marker} {code}", flush=True)
    if server is not None:  # it ends when its socket closes; its stages' usage counts as ours
        server.close()
        os.waitpid(server.pid, 0)
    # as driftloop.lock.leave: the atexit handlers, the streams, then no teardown of DVC's
    # imports (about 0.5 s), which the flow would wait for
    import atexit

    atexit._run_exitfuncs()  # noqa: SLF001
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
