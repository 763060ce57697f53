"""`make demo` / `make down`: the whole loop on synthetic data, through a local Prefect server.

up: start Prefect (SQLite under .prefect/) and the MLflow UI, deploy prefect.yaml, start a
process worker, then play the story (`play`) and print a summary:

1. `simulate.weeks` weeks of labelled history land; train/weekly trains the first champion;
2. live weeks follow, one at a time, as the schedules would run them: a week arrives
   unlabelled in `simulate.incoming` and is scored and drift-checked; the labels of the week
   `simulate.label_delay_days` before it arrive in `paths.labels`, and that week's labelled
   rows land for training;
3. the first live week is clean; from the second the applicant mix shifts and the concept
   drifts over `simulate.drift_ramp_weeks` weeks. Each check reports the champion's measured
   metric on every labelled week next to its test figure: it falls;
4. the weekly schedule's retrain, once the first new labelled week has landed (still
   pre-drift), is refused by the gate: nothing to learn, no better;
5. the policy waits until the drifted weeks have `policy.min_drift_labels` labelled rows,
   then asks for a retrain; the `train/weekly` trigger runs it and the gate promotes it;
6. one more week: the check against the new champion's reference is quiet.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from driftloop.runs import WaitFailed
from driftloop.services import Stack

DEMO_PROJECT = "driftloop-demo"
# paths.* the demo keeps: the arrivals folder itself (its batch files go) and the contract
KEPT_PATHS = ("landing", "suite")
# demo state outside params.yaml: what `dvc repro` records and the local DVC remote (.dvc/config)
DVC_STATE = ("dvc.lock", "dvc-remote")
MAX_LIVE_WEEKS = 10  # the story gives up when no retrain was asked for by then
DEMO_ENV = {
    # the weekly flows run in this process: their logs go to the Prefect UI, not the terminal
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # the worker asks for new runs every 2 s, not 10: each training run starts sooner
    "PREFECT_WORKER_QUERY_SECONDS": "2",
}


def say(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def demo_state(params) -> list[Path]:
    """Everything a demo run writes: every `paths.*` but the kept ones, the simulator's
    incoming folder, the sqlite MLflow store, dvc.lock and the local DVC remote."""
    from driftloop.config import PathParams

    state = [params.path(k) for k in PathParams.model_fields if k not in KEPT_PATHS]
    state.append(params.root / params.simulate.incoming)
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


def play(params, stack: Stack, *, tell=say) -> dict:
    """The story of the module docstring on a running `stack` (deployed, with a worker) for
    the project of `params`. Training runs go through the deployments; the weekly score and
    drift-check flows (the deployments' entrypoints) run in this process, as Prefect flow runs,
    to spare a worker start per check. Returns what happened, week by week."""
    from driftloop import simulate as sim
    from driftloop.runs import mark_lost_runs, run_deployment, wait_for_run

    score, drift_check = (deployment_flow(params.root, d) for d in ("score/daily", "drift-check/daily"))
    s = params.simulate
    history, drift_from = s.weeks, drift_week(params)
    incoming = params.root / s.incoming
    tell(f"{history} weeks of labelled history land in {params.paths.landing}; "
         "prefect deployment run train/weekly")
    sim.run(params, list(range(history)), drift_from)
    # every wait below stops with the reason when the worker this stack started dies, or a
    # run's process does (then the run is marked Crashed), and after timeouts.flow_run_s
    local = stack.record("worker") is not None
    waits = {"timeout": params.timeouts.flow_run_s, "worker_gone": stack.worker_gone,
             "local_worker": local}
    if local:
        for lost in mark_lost_runs("train/weekly"):  # e.g. a run of a killed earlier demo
            tell(f"train/weekly run {lost.name} had lost its process: marked Crashed")
    run_deployment("train/weekly", {"trigger": "manual"}, **waits)
    weeks: list[dict] = []
    retrained_at = None
    for week in range(history, history + MAX_LIVE_WEEKS):
        strength = sim.drift_strength(week, drift_from, s.drift_ramp_weeks)
        due = [w for w in sim.labels_due([week], s.label_delay_days) if w >= history]
        name = sim.batch_name(date.fromisoformat(s.start), week)
        tell(f"week {week}: {name} arrives (drift strength {strength:.2f}); labels arrive for "
             f"week(s) {due or 'none'}")
        sim.write_labels(params, due, drift_from)
        sim.run(params, due, drift_from)  # the labelled rows land for training
        if due and week == history + 1:
            tell("the weekly schedule's retrain (prefect deployment run train/weekly): one new "
                 "labelled week, still pre-drift")
            run_deployment("train/weekly", **waits)
            tell(f"gate: {_decision(params)}")
        (batch,) = sim.run(params, [week], drift_from, incoming, labelled=False)
        score(str(batch))
        since = datetime.now(UTC)
        result = drift_check(str(batch))
        policy = result["policy"]
        tell(f"drift-check: {result['status']} ({result['reason']}); policy: {policy['action']}: "
             f"{policy['reason']}")
        weeks.append({"week": week, "batch": name, "strength": strength, "labels_for": due,
                      "status": result["status"], "action": policy["action"],
                      "champion": result["champion_version"]})
        if retrained_at is not None:
            break
        if policy["action"] == "retrain":
            tell("the drift event starts train/weekly (trigger=drift); waiting for it")
            run = wait_for_run("train/weekly", since, trigger="drift", poll=1, **waits)
            tell(f"train/weekly run {run.name} (trigger=drift): {run.state.name}; "
                 f"gate: {_decision(params)}")
            retrained_at = week
    return {"weeks": weeks, "retrained_at": retrained_at, "drift_from": drift_from}


def drift_week(params) -> int:
    """The demo's drift starts in its second live week: one clean week to check first."""
    return params.simulate.weeks + 1


def deployment_flow(root: Path, name: str):
    """The flow deployment `flow/deployment` of prefect.yaml runs (its entrypoint), to run in
    this process: the same code a worker would start."""
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    flow_name, deployment = name.split("/")
    for d in yaml.safe_load((root / "prefect.yaml").read_text())["deployments"]:
        if d["name"] == deployment:
            flow = load_flow_from_entrypoint(str(root / d["entrypoint"]))
            if flow.name == flow_name:
                return flow
    raise ValueError(f"{root / 'prefect.yaml'} has no deployment {name!r}")


def _decision(params) -> str:
    d = json.loads((params.report_dir("register") / "decision.json").read_text())
    return f"v{d['version']} {'promoted' if d['promote'] else 'refused'}: {d['reason']}"


def realized(params, version: str) -> list[dict]:
    """Model `version`'s measured metric on each labelled window it scored, with its test figure."""
    from mlflow import MlflowClient

    from driftloop import tracking
    from driftloop.monitor.labels import champion_performance

    tracking.setup(params)
    tags = MlflowClient().get_model_version(params.project.name, version).tags
    test = json.loads(tags.get("challenger_metrics") or "{}")
    metric = params.policy.performance_metric
    return champion_performance(params, version=version, metric=metric,
                                threshold=test.get("threshold"), baseline=test.get(metric))


def print_decay(params, version: str) -> None:
    """Model `version`'s measured metric week by week, with the simulated drift's strength."""
    from driftloop import simulate as sim

    s = params.simulate
    start, metric = date.fromisoformat(s.start), params.policy.performance_metric
    rows = realized(params, version)
    test = next((r["champion_test"] for r in rows if r["champion_test"] is not None), None)
    print(f"v{version}'s measured {metric} on the labelled weeks it scored (test {metric} {test:.4f}):"
          if test is not None else f"v{version}'s measured {metric} on the labelled weeks it scored:")
    for r in rows:
        week = (datetime.fromisoformat(r["window"].removeprefix("batch_")).date() - start).days // 7
        strength = sim.drift_strength(week, drift_week(params), s.drift_ramp_weeks)
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        drop = "" if r["drop"] is None else f" ({-r['drop']:+.4f} vs test)"
        print(f"  week {week:>2} {r['window']}: drift strength {strength:.2f}, {r['labelled']} "
              f"labels, {value}{drop}")


def summary(root: Path, stack: Stack, stop: str = "make down") -> None:
    from driftloop.cli import status_report
    from driftloop.config import load_params

    params = load_params(root / "params.yaml")
    rep = status_report(params)
    say("summary")
    c = rep["champion"]
    test = "-" if not c or c["test_metric"] is None else f"{c['test_metric']:.4f}"
    print(f"champion: {rep['model']} v{c['version']} (trigger {c['trigger']}, test {c['metric']} "
          f"{test})" if c else "champion: none")
    print("model versions (newest first):")
    for v in rep["versions"]:
        print(f"  v{v['version']}: trigger={v['trigger']}, {v['decision']}: {v['reason']}")
    first = next((v for v in reversed(rep["versions"])), None)
    if first:
        print_decay(params, str(first["version"]))
    print("weekly drift checks:")
    for f in sorted(params.report_dir("drift").glob("*/verdict.json")):
        v = json.loads(f.read_text())
        p = v.get("policy") or {}
        est = v.get("estimated_performance") or {}
        m = (est.get("metrics") or {}).get(est.get("metric"))
        guess = (f", estimated {est['metric']} {m['estimate']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"
                 if m else "")
        print(f"  {v['batch']} vs v{v['champion_version']}: {v['status']}{guess} -> "
              f"{p.get('action')} ({p.get('reason')})")
    print(f"monitoring page (drift, estimated and measured {params.policy.performance_metric} over "
          f"time): {params.path('monitoring_page')}")
    print(f"\nPrefect UI: http://127.0.0.1:{stack.prefect_port}  (flow runs, artifacts, the "
          "retrain-on-drift automation)")
    print(f"MLflow UI:  {stack.mlflow_url}  (registry with the gate's evidence per version, "
          "drift-* runs with labelled_auc)")
    print(f"Both keep running; `{stop}` stops them.")


def up(root: Path) -> None:
    from driftloop.config import load_params

    params = load_params(root / "params.yaml")
    stack = Stack(root)
    os.environ.update(stack.env())
    os.environ.update(DEMO_ENV, DRIFTLOOP_PARAMS=str(root / "params.yaml"))
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
    story = play(params, stack)
    if story["retrained_at"] is None:
        raise SystemExit(f"no retrain was asked for in {MAX_LIVE_WEEKS} live weeks; see "
                         f"{params.paths.decisions}")
    summary(root, stack)


def down(root: Path) -> None:
    """Stop only what `up` started: each recorded process, checked by pid and start time."""
    report = Stack(root).stop()
    print("stopped: " + (", ".join(report.stopped) if report.stopped else "nothing was running"))
    for line in report.skipped:
        print(f"not stopped: {line}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[1]
    cmd = argv[0] if argv else "up"
    t0 = time.monotonic()
    commands = {"up": up, "down": down, "summary": lambda r: summary(r, Stack(r))}
    if cmd not in commands:
        print(f"unknown command {cmd!r}; use one of: {', '.join(commands)}", file=sys.stderr)
        sys.exit(2)
    try:
        commands[cmd](root)
    except (WaitFailed, TimeoutError) as exc:  # a dead worker or a wait past its limit
        print(f"\ndemo stopped: {exc}", file=sys.stderr)
        sys.exit(1)
    if cmd == "up":
        print(f"(demo took {time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
