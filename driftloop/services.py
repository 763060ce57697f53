"""Start, probe and stop the local services (Prefect server and worker, MLflow UI).

Used by `make demo` / `make down` and by the end-to-end tests, which pass free ports.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
OFFLINE_ENV = {
    "DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false",
    "OMP_WAIT_POLICY": "PASSIVE",
}
PREFECT_START_S = 90      # a Prefect server becoming healthy (first start migrates its database)
MLFLOW_START_S = 120      # an MLflow server becoming healthy
PREFECT_CLI_S = 300       # one `prefect` CLI call (work-pool create, deploy)
STOP_GRACE_S = 10         # after SIGTERM, before SIGKILL
# Two start times this close name the same process: the boot time /proc reports can drift by a
# second, and ps reports whole seconds; no pid is reused within that.
SAME_START_S = 2.0


def offline_env(**extra: str) -> dict[str, str]:
    """This process's environment with telemetry off, this interpreter's bin first on PATH
    (so `python`, `dvc` and `prefect` are the project's), plus `extra`."""
    env = {**os.environ, **OFFLINE_ENV, **extra}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def wait_healthy(url: str, seconds: float, proc: subprocess.Popen | None = None,
                 log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if healthy(url):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{url} did not become healthy within {seconds:.0f}s; log tail:\n{tail}")


# ---------------------------------------------------------------- processes we started
def process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None when there is no such
    live process (a zombie counts as gone). Together with the pid it names one process: the
    system may give a freed pid to another process, never with the same start time."""
    if not _has_proc():  # macOS: ask ps
        return _ps_start(pid)
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    if fields is None or fields[0] in "ZX":
        return None
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _stat_fields(stat: Path) -> list[str] | None:
    """The fields of a /proc/<pid>/stat file after "pid (comm) " (state, ppid, pgrp, ...),
    or None when the process is gone."""
    try:
        text = stat.read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _all_stats() -> list[tuple[int, list[str]]]:
    """(pid, stat fields) of every live process (empty without /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        if (fields := _stat_fields(stat)) is not None:
            out.append((int(stat.parent.name), fields))
    return out


@functools.cache
def _has_proc() -> bool:
    return Path("/proc/self/stat").exists()


@functools.cache
def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("/proc/stat has no btime line")


def _ps_start(pid: int) -> float | None:
    out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True,
                         timeout=10).stdout.strip()
    return time.mktime(time.strptime(out, "%a %b %d %H:%M:%S %Y")) if out else None


def process_group(pgid: int) -> list[int]:
    """The live processes of process group `pgid` (read from /proc; empty without it)."""
    return [pid for pid, fields in _all_stats() if int(fields[2]) == pgid and fields[0] not in "ZX"]


@dataclass(frozen=True)
class ProcessRecord:
    """A process this project started and leads a process group of its own (its pid is the
    group id): the pid plus its start time, so a pid reused by another process is never
    signalled."""

    pid: int
    started: float | None

    @classmethod
    def of(cls, pid: int) -> ProcessRecord:
        return cls(pid, process_start(pid))

    @classmethod
    def read(cls, path: Path) -> ProcessRecord:
        text = path.read_text().strip()
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return cls(int(data["pid"]), data.get("started"))
        return cls(int(text), None)  # an old pid file: the pid alone

    def write(self, path: Path) -> None:
        path.write_text(json.dumps({"pid": self.pid, "started": self.started}))

    def running(self) -> bool:
        """The recorded process itself is still alive (not a newer one with its pid)."""
        _reap(self.pid)
        now = process_start(self.pid)
        return self.started is not None and now is not None and self._same(now)

    def _same(self, start: float) -> bool:
        return self.started is not None and abs(start - self.started) < SAME_START_S

    def group(self) -> list[int]:
        """Processes left in its group once the leader is gone: they can only be ours, since a
        pid is not reused while it names a live process group."""
        return [] if self.started is None else process_group(self.pid)

    def why_not_signalled(self) -> str | None:
        """Why this record must not be signalled, or None when it may."""
        if self.started is None:
            return (f"pid {self.pid}: its pid file records no start time, so it may be another "
                    "process now; not signalled (stop it by hand if it is yours)")
        now = process_start(self.pid)
        if now is not None and not self._same(now):
            return (f"pid {self.pid} now belongs to another process (started "
                    f"{time.ctime(now)}, not {time.ctime(self.started)}); not signalled")
        return None

    def signal(self, sig: int) -> bool:
        """Send `sig` to its process group while that is still ours; True if any got it."""
        if self.why_not_signalled() is not None:
            return False
        try:
            if self.running():
                os.killpg(self.pid, sig)
                return True
            hit = False
            for pid in self.group():
                try:
                    os.kill(pid, sig)
                    hit = True
                except ProcessLookupError:
                    pass
            return hit
        except ProcessLookupError:
            return False

    def alive(self) -> bool:
        return self.why_not_signalled() is None and (self.running() or bool(self.group()))


def _reap(pid: int) -> None:
    """Collect `pid` if it is an exited child of this process, so it stops counting as alive."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents first (read from /proc; `pid` alone without it)."""
    children: dict[int, list[int]] = {}
    for child, fields in _all_stats():
        children.setdefault(int(fields[1]), []).append(child)
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop(0))
        todo += children.get(tree[-1], [])
    return tree


def kill_tree(pid: int, grace: float = STOP_GRACE_S) -> int:
    """SIGTERM `pid` and every descendant (taken before any dies, since orphans lose their
    parent), SIGKILL what is left after `grace` seconds; only processes that are still the
    ones found (pid and start time). Returns how many there were."""
    tree = [ProcessRecord.of(p) for p in process_tree(pid)]
    tree = [r for r in tree if r.started is not None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for r in tree:
            if r.running():
                try:
                    os.kill(r.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 0)
        while any(r.running() for r in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
    return len(tree)


@dataclass
class StopReport:
    stopped: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class Stack:
    """Where the services of one project live: ports, PREFECT_HOME, pid and log files."""

    root: Path
    prefect_port: int = 4200
    mlflow_port: int = 5000
    pool: str = "local"
    # what stop() stops, in this order (workers first, databases last)
    SERVICES = ("worker", "mlflow", "prefect-server")

    @property
    def run_dir(self) -> Path:
        return self.root / ".run"

    @property
    def prefect_api(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def env(self) -> dict[str, str]:
        return offline_env(PREFECT_HOME=str(self.root / ".prefect"),
                           PREFECT_API_URL=self.prefect_api, DRIFTLOOP_ROOT=str(self.root))

    def _start(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
               **popen) -> subprocess.Popen:
        """Start `cmd` in a process group of its own and record it in .run/<name>.pid; `env`
        replaces this stack's environment, `popen` goes to Popen (user=, group=, cwd=)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        popen.setdefault("cwd", self.root)
        with open(self.log(name), "ab") as log:
            proc = subprocess.Popen(cmd, env=self.env() if env is None else env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, **popen)
        ProcessRecord.of(proc.pid).write(self.run_dir / f"{name}.pid")
        return proc

    def log(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def record(self, name: str) -> ProcessRecord | None:
        """The process this stack started as `name`, if it recorded one."""
        path = self.run_dir / f"{name}.pid"
        try:
            return ProcessRecord.read(path)
        except (OSError, ValueError, KeyError):
            return None

    def start_prefect(self, **server_env: str) -> None:
        """`server_env`: settings for the server process alone (e.g. its database URL)."""
        health = f"{self.prefect_api}/health"
        if healthy(health):
            return
        proc = self._start("prefect-server", [str(BIN / "prefect"), "server", "start", "--host",
                                              "127.0.0.1", "--port", str(self.prefect_port)],
                           env={**self.env(), **server_env})
        wait_healthy(health, PREFECT_START_S, proc, self.log("prefect-server"))

    def start_mlflow(self, tracking_uri: str, artifact_root: Path) -> None:
        if healthy(f"{self.mlflow_url}/health"):
            return
        proc = self._start("mlflow", [
            str(BIN / "mlflow"), "server", "--backend-store-uri", tracking_uri,
            "--default-artifact-root", artifact_root.as_uri(), "--host", "127.0.0.1",
            "--port", str(self.mlflow_port), "--workers", "1"])
        wait_healthy(f"{self.mlflow_url}/health", MLFLOW_START_S, proc, self.log("mlflow"))

    def prefect(self, *args: str, check: bool = True, quiet: bool = False,
                timeout: float = PREFECT_CLI_S) -> int:
        """Run the prefect CLI against this stack; `quiet` shows its output only on failure."""
        out = subprocess.PIPE if quiet else None
        what = f"`prefect {' '.join(args)}`"
        try:
            proc = subprocess.run([str(BIN / "prefect"), *args], cwd=self.root, env=self.env(),
                                  stdout=out, stderr=subprocess.STDOUT if quiet else None,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"{what} did not finish within {timeout:.0f}s (killed); is the "
                               f"Prefect API at {self.prefect_api} answering?") from exc
        if check and proc.returncode != 0:
            raise RuntimeError(f"{what} exited {proc.returncode}"
                               + (f":\n{proc.stdout[-4000:]}" if quiet else ""))
        return proc.returncode

    def deploy(self) -> None:
        self.prefect("work-pool", "create", self.pool, "--type", "process", "--overwrite",
                     quiet=True)
        self.prefect("--no-prompt", "deploy", "--all", quiet=True)

    def start_worker(self) -> None:
        worker = self.record("worker")
        if worker is not None and worker.running():
            return
        self._start("worker", [str(BIN / "prefect"), "worker", "start", "--pool", self.pool])

    def worker_gone(self) -> str | None:
        """Why the worker this stack started cannot run flow runs any more (None while it runs,
        or when this stack started none: then nothing can be said)."""
        worker = self.record("worker")
        if worker is None or worker.running():
            return None
        log = self.log("worker")
        tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
        return (f"the Prefect worker of pool {self.pool!r} (pid {worker.pid}) is not running; "
                f"its log is {log}" + ("; last lines:\n  " + "\n  ".join(tail) if tail else "")
                + "\nstart it again with `make demo` (or `prefect worker start --pool "
                f"{self.pool}`)")

    def stop(self) -> StopReport:
        """Stop what this stack started, workers first: each recorded process group, only while
        its leader is still the process recorded (pid and start time), never a reused pid."""
        report = StopReport()
        for name in self.SERVICES:
            pid_file = self.run_dir / f"{name}.pid"
            rec = self.record(name)
            if rec is None:
                continue
            if (why := rec.why_not_signalled()) is not None:
                report.skipped.append(f"{name}: {why}")
            elif rec.signal(signal.SIGTERM):
                deadline = time.monotonic() + STOP_GRACE_S
                while rec.alive() and time.monotonic() < deadline:
                    time.sleep(0.2)
                if rec.alive():
                    rec.signal(signal.SIGKILL)
                report.stopped.append(name)
            pid_file.unlink(missing_ok=True)
        return report
