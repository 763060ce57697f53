"""`make demo` / `make down`: the whole loop on synthetic data, through a local Prefect server.

up: start Prefect (SQLite under .prefect/) and the MLflow UI, deploy prefect.yaml, start a
process worker, then run train/weekly, score/daily and drift-check/daily (a clean batch,
then a drifted one whose drift event triggers train/weekly again) and print a summary.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from driftloop.services import Stack

DEMO_PROJECT = "driftloop-demo"
# paths.* the demo keeps: the arrivals folder itself (its batch files go) and the contract
KEPT_PATHS = ("landing", "suite")
# demo state outside params.yaml: what `dvc repro` records and the local DVC remote (.dvc/config)
DVC_STATE = ("dvc.lock", "dvc-remote")


def say(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def demo_state(params) -> list[Path]:
    """Everything a demo run writes: every `paths.*` but the kept ones, the sqlite MLflow
    store, dvc.lock and the local DVC remote."""
    from driftloop.config import PathParams

    state = [params.path(k) for k in PathParams.model_fields if k not in KEPT_PATHS]
    sqlite = "sqlite:///"
    if params.tracking_uri.startswith(sqlite):
        state.append(Path(params.tracking_uri[len(sqlite):]))
    return state + [params.root / rel for rel in DVC_STATE]


def reset_demo_state(params) -> None:
    """The demo starts from a clean slate: previous demo data, models and registry go."""
    for p in demo_state(params):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for f in params.path("landing").glob("*.parquet"):
        f.unlink()


def up(root: Path) -> None:
    from driftloop.config import load_params
    from driftloop.simulate import batch_name
    from driftloop.simulate import run as simulate

    params = load_params(root / "params.yaml")
    stack = Stack(root)
    os.environ.update(stack.env())
    if params.project.name == DEMO_PROJECT:
        say("resetting demo state (data/, models/, reports/, MLflow store)")
        stack.stop()  # the MLflow UI holds the store open
        reset_demo_state(params)
    say(f"starting Prefect server on {stack.prefect_api} and MLflow UI on {stack.mlflow_url}")
    stack.start_prefect()
    stack.start_mlflow(params.tracking_uri, params.path("mlflow_artifacts"))
    say("deploying prefect.yaml and starting a process worker")
    stack.deploy()
    stack.start_worker()

    weeks = params.simulate.weeks
    start = datetime.fromisoformat(params.simulate.start).date()
    say(f"simulating {weeks} weekly batches into {params.paths.landing}")
    simulate(params, list(range(weeks)), None)
    say("prefect deployment run train/weekly")
    stack.prefect("deployment", "run", "train/weekly", "-p", "trigger=manual", "--watch")

    clean, drifted = batch_name(start, weeks), batch_name(start, weeks + 1)
    simulate(params, [weeks], None)
    say(f"score/daily on {clean}")
    stack.prefect("deployment", "run", "score/daily", "-p", f"batch={clean}", "--watch")
    say(f"drift-check/daily on {clean} (no drift expected)")
    stack.prefect("deployment", "run", "drift-check/daily", "-p", f"batch={clean}", "--watch")

    simulate(params, [weeks + 1], weeks + 1)
    since = datetime.now(UTC)
    say(f"drift-check/daily on {drifted} (drift switched on from this week)")
    stack.prefect("deployment", "run", "drift-check/daily", "-p", f"batch={drifted}", "--watch")
    say("waiting for the retraining run the drift event triggered")
    from driftloop.runs import wait_for_run

    run = wait_for_run("train/weekly", since, trigger="drift", timeout=600)
    print(f"train/weekly run {run.name} (trigger=drift): {run.state.name}")
    summary(root, stack)


def summary(root: Path, stack: Stack) -> None:
    import json

    from driftloop.cli import status_report
    from driftloop.config import load_params

    params = load_params(root / "params.yaml")
    rep = status_report(params)
    say("summary")
    c = rep["champion"]
    metrics = json.loads((params.report_dir("evaluate") / "metrics.json").read_text())
    print(f"champion: {rep['model']} version {c['version']}" if c else "champion: none")
    from driftloop.metrics import TASK_METRICS

    print("last test metrics: " + ", ".join(f"{k} {metrics[k]:.4f}" for k in TASK_METRICS[params.task]))
    print("model versions (newest first):")
    for v in rep["versions"]:
        print(f"  v{v['version']}: trigger={v['trigger']}, {v['decision']}: {v['reason']}")
    print("drift verdicts:")
    for f in sorted(params.report_dir("drift").glob("*/verdict.json")):
        v = json.loads(f.read_text())
        print(f"  {v['batch']}: {v['status']} ({v['reason']})")
    print(f"\nPrefect UI: http://127.0.0.1:{stack.prefect_port}")
    print(f"MLflow UI:  {stack.mlflow_url}")
    print("Both keep running; `make down` stops them.")


def down(root: Path) -> None:
    stopped = Stack(root).stop()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[1]
    cmd = argv[0] if argv else "up"
    t0 = time.monotonic()
    commands = {"up": up, "down": down, "summary": lambda r: summary(r, Stack(r))}
    if cmd not in commands:
        print(f"unknown command {cmd!r}; use one of: {', '.join(commands)}", file=sys.stderr)
        sys.exit(2)
    commands[cmd](root)
    if cmd == "up":
        print(f"(demo took {time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
