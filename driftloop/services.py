"""Start, probe and stop the local services (Prefect server and worker, MLflow UI).

Used by `make demo` / `make down` and by the end-to-end tests, which pass free ports.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
OFFLINE_ENV = {
    "DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false",
    "OMP_WAIT_POLICY": "PASSIVE",
}


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


@dataclass
class Stack:
    """Where the services of one project live: ports, PREFECT_HOME, pid and log files."""

    root: Path
    prefect_port: int = 4200
    mlflow_port: int = 5000
    pool: str = "local"

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

    def _start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.run_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, cwd=self.root, env=self.env(), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        (self.run_dir / f"{name}.pid").write_text(str(proc.pid))
        return proc

    def start_prefect(self) -> None:
        health = f"{self.prefect_api}/health"
        if healthy(health):
            return
        proc = self._start("prefect-server", [str(BIN / "prefect"), "server", "start", "--host",
                                              "127.0.0.1", "--port", str(self.prefect_port)])
        wait_healthy(health, 90, proc, self.run_dir / "prefect-server.log")

    def start_mlflow(self, tracking_uri: str, artifact_root: Path) -> None:
        if healthy(f"{self.mlflow_url}/health"):
            return
        proc = self._start("mlflow", [
            str(BIN / "mlflow"), "server", "--backend-store-uri", tracking_uri,
            "--default-artifact-root", artifact_root.as_uri(), "--host", "127.0.0.1",
            "--port", str(self.mlflow_port), "--workers", "1"])
        wait_healthy(f"{self.mlflow_url}/health", 120, proc, self.run_dir / "mlflow.log")

    def prefect(self, *args: str, check: bool = True, quiet: bool = False) -> int:
        """Run the prefect CLI against this stack; `quiet` shows its output only on failure."""
        out = subprocess.PIPE if quiet else None
        proc = subprocess.run([str(BIN / "prefect"), *args], cwd=self.root, env=self.env(),
                              stdout=out, stderr=subprocess.STDOUT if quiet else None, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"`prefect {' '.join(args)}` exited {proc.returncode}"
                               + (f":\n{proc.stdout[-4000:]}" if quiet else ""))
        return proc.returncode

    def deploy(self) -> None:
        self.prefect("work-pool", "create", self.pool, "--type", "process", "--overwrite",
                     quiet=True)
        self.prefect("--no-prompt", "deploy", "--all", quiet=True)

    def start_worker(self) -> None:
        pid = self.run_dir / "worker.pid"
        if pid.exists() and _alive(int(pid.read_text())):
            return
        self._start("worker", [str(BIN / "prefect"), "worker", "start", "--pool", self.pool])

    def stop(self) -> list[str]:
        """Stop what this project started (by the pids it recorded), workers first."""
        stopped = []
        for name in ("worker", "mlflow", "prefect-server"):
            pid_file = self.run_dir / f"{name}.pid"
            if not pid_file.exists():
                continue
            pid = int(pid_file.read_text())
            if _alive(pid):
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                for _ in range(40):
                    if not _alive(pid):
                        break
                    time.sleep(0.25)
                else:
                    os.killpg(pid, signal.SIGKILL)
                stopped.append(name)
            pid_file.unlink(missing_ok=True)
        return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except OSError:
        return False
