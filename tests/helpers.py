"""Test helpers and the test environment (imported once, as tests.helpers).

Servers the tests start listen on free ports with their own PREFECT_HOME, never on the
ports a user's demo uses."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Set before anything imports prefect or mlflow: offline, quiet, small thread counts, and a
# Prefect API of our own (started on demand by the `prefect_api` fixture).
_HOME = Path(tempfile.mkdtemp(prefix="driftloop-tests-"))
from driftloop.services import OFFLINE_ENV, free_port  # noqa: E402

os.environ.update(OFFLINE_ENV)
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
_PREFECT_PORT = free_port()
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{_PREFECT_PORT}/api"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

# Small enough to train in seconds, large enough for a meaningful AUC.
TINY = {
    "simulate": {"rows_per_week": 500, "weeks": 6},
    "ingest": {"window_weeks": 8},
    "train": {"xgboost": {"n_estimators": 150, "early_stopping_rounds": 15},
              "mlp": {"max_epochs": 6, "patience": 2}},
    "drift": {"min_rows": 100},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


def run(cmd: list[str], cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def make_project(dest: Path, overrides: dict | None = None) -> Path:
    """A fresh copy of the project's tracked files in its own git repo, with tiny params."""
    from driftloop.stack import copy_project_files

    copy_project_files(ROOT, dest)
    (dest / "data/landing").mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(_merge(_merge(params, TINY),
                                                            overrides or {})))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        run(cmd, dest)
    return dest


def simulate(project: Path, weeks: list[int], drift_from: int | None = None) -> list[Path]:
    from driftloop.config import load_params
    from driftloop.simulate import run as sim_run

    return sim_run(load_params(project / "params.yaml"), weeks, drift_from)



def deploy_project(project: Path, prefect_port: int):
    """Deploy `project`'s prefect.yaml to the test server and start a process worker for it."""
    from driftloop.services import Stack

    stack = Stack(project, prefect_port=prefect_port)
    env = {**os.environ, "DRIFTLOOP_ROOT": str(project),
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    stack.env = lambda: env
    stack.deploy()
    stack.start_worker()
    return stack


def training_frames(train_rows: int, val_rows: int, seed: int):
    """(params, preprocessor, train, val, target) on simulated demo data, for learner tests."""
    from datetime import date

    from driftloop.config import load_params
    from driftloop.learn.features import Preprocessor
    from driftloop.learn.models import Target
    from driftloop.simulate import simulate_week

    p = load_params(ROOT / "params.yaml")
    train = simulate_week(0, rows=train_rows, seed=seed, start=date(2026, 1, 5), drift=False)
    val = simulate_week(1, rows=val_rows, seed=seed, start=date(2026, 1, 5), drift=False)
    pre = Preprocessor.fit(train, p.data.numerical, p.data.categorical)
    return p, pre, train, val, Target.fit("binary", train[p.data.target])


def demo_params():
    """The repository's own params.yaml, the one home of every default."""
    from driftloop.config import load_params

    return load_params(ROOT / "params.yaml")


def section(name: str, **changes):
    """One params section of the demo project, with `changes` applied and validated."""
    params = demo_params()
    part = getattr(params, {"validate": "validate_", "register": "register_"}.get(name, name))
    return type(part).model_validate({**part.model_dump(), **changes})
