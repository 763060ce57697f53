"""Scale figures: the train pipeline's stages at 1e5 and 1e6 rows next to the bare libraries.

    python benchmarks/bench_scale.py [--rows 100000 1000000] [--weeks 8] [--mlp-epochs N]
        [--no-flow] [--dask]

For each row count, simulated weekly batches (parquet, `--weeks` of them) land in a temporary
copy of the project (the demo's params; the suite's per-batch row-count ceiling raised to the
batch size). Then, each in a fresh process so its peak memory (RSS high-water of the process
and anything it started) is its own:

- every stage's `run(params)`, in dvc.yaml's order (its imports, the lazy ones inside run()
  included, before the clock starts; the project's MLflow store is created beforehand, as in
  a project that has trained before: a fresh SQLite store runs MLflow's schema migrations
  once, timed apart and printed);
- its floor, the bare libraries doing the same work on the same files:
    ingest    pyarrow reads each batch's time column, the window's files are hard-linked;
    validate  the suite's checks in plain pandas (benchmarks/bench_validate.py), the window
              concatenated and written with pandas/pyarrow;
    split     numpy: newest rows to test, a stratified random val, three parquet files;
    train     parquet read, `xgb.train` on DMatrix-es of the same matrices (same params, weights
              and as many rounds as the stage ran), the bare torch loop of
              benchmarks/bench_train.py over the same network for as many epochs as the stage
              ran, and `mlflow.xgboost.log_model` of the booster to a file store (the MLflow
              logging floor); preprocessing is left out of the floor;
    evaluate  parquet read, booster predict, AUC / Brier / F1 in scikit-learn;
    register  `mlflow.register_model` and an alias in that file store;
- the whole train flow (Prefect flow -> `dvc repro` per stage -> MLflow on SQLite), in a second
  copy with the same batches, against a Prefect server started for it (its start not timed),
  run between the stages and the floors (the machine's speed drifts over minutes).

Prints a table per row count and the goals (at 1e6 rows on 2 cores): flow <= 1.3x the sum of
the floors; peak memory < 4 GiB; Prefect + DVC + MLflow overhead < 10 % of the flow, where that
overhead is the flow's time outside its own stages' time (each stage logs the time it ran under
its lock, so both come from the same run: process starts, module imports, Prefect tasks, DVC
hashing, checkout and push; what a stage imports inside `run()`, its `LAZY_IMPORTS`, counts
as the stage's: in the flow the stage server imports those ahead, and the time a stage waited
for the server to import its own is taken out, while its wait for anything else stays in;
the figure with those waits counted as overhead is printed too) plus the train stage's time
outside fitting (model save, `log_model`, signature, reference rows) less its reading of the
splits, which the floor does as well.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

STAGES = ["ingest", "validate", "split", "train", "evaluate", "register"]
GIB = 1024 ** 3
MARK = "BENCH-RESULT "
STAGE_DONE = re.compile(r"stage '(\w+)' done in ([0-9.]+) s(?: \(it waited [0-9.]+ s for the "
                        r"stage server, ([0-9.]+) s of them for its own LAZY_IMPORTS\))?")


# ---------------------------------------------------------------- jobs (each in its own process)
def stage_job(name: str, project: Path, scratch: Path, info: dict) -> dict:
    import importlib

    from driftloop.config import load_params
    from driftloop.trigger import Trigger

    mod = importlib.import_module(f"pipelines.{name}")
    t0 = time.perf_counter()
    # what the stage imports inside run() (its LAZY_IMPORTS), imported before its clock
    # starts, as its module is: the run standalone times the stage's own work
    for lib in getattr(mod, "LAZY_IMPORTS", ()):
        importlib.import_module(lib)
    extra: dict = {"lazy_import_s": time.perf_counter() - t0}
    params = load_params(project / "params.yaml")
    if name == "train":  # rounds and epochs the floor must match, and the fitting time
        real = mod.fit_best

        def fit_best(*a, **kw):
            t0 = time.perf_counter()
            trained = real(*a, **kw)
            extra["fit_s"] = time.perf_counter() - t0
            fits = trained.fitted
            if "xgboost" in fits:
                extra["xgb_rounds"] = int(fits["xgboost"].model.num_boosted_rounds())
                extra["xgb_s"] = fits["xgboost"].seconds
            if "mlp" in fits:
                extra["mlp_epochs"] = len(fits["mlp"].history["val_score"])
                extra["mlp_s"] = fits["mlp"].seconds
            extra["chosen"] = trained.chosen
            extra["threads"] = trained.threads
            return trained

        mod.fit_best = fit_best
    t0 = time.perf_counter()
    mod.run(params, Trigger("manual", "bench_scale")) if name == "register" else mod.run(params)
    return {"seconds": time.perf_counter() - t0, **extra}


def floor_ingest(project: Path, scratch: Path, info: dict) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from driftloop.config import load_params

    params = load_params(project / "params.yaml")
    out = scratch / "window"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spans = {}
    for path in sorted(params.path("raw").glob("*.parquet")):
        t = pq.read_table(path, columns=[params.data.time]).column(0)
        spans[path] = (pc.min(t).as_py(), pc.max(t).as_py())
    for path in spans:
        os.link(path, out / path.name)
    return {"seconds": time.perf_counter() - t0}


def floor_validate(project: Path, scratch: Path, info: dict) -> dict:
    import pandas as pd
    from bench_validate import pandas_checks

    from driftloop.config import load_params
    from driftloop.contract.suite import time_parameters

    params = load_params(project / "params.yaml")
    suite = json.loads(params.path("suite").read_text())
    v = params.validate_
    tp = time_parameters(pd.Timestamp.now(tz="UTC"), max_age_days=v.max_age_days,
                         clock_skew_minutes=v.clock_skew_minutes)
    t0 = time.perf_counter()
    frames = [pd.read_parquet(p) for p in sorted(params.path("window").glob("*.parquet"))]
    failed = sum(pandas_checks(df, suite, tp) for df in frames)
    pd.concat(frames, ignore_index=True).to_parquet(scratch / "validated.parquet", index=False)
    return {"seconds": time.perf_counter() - t0, "failed_checks": failed}


def floor_split(project: Path, scratch: Path, info: dict) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from driftloop.config import load_params

    params = load_params(project / "params.yaml")
    s, d = params.split, params.data
    t0 = time.perf_counter()
    table = pq.read_table(params.path("validated"))
    times = table.column(d.time).to_numpy()
    y = table.column(d.target).to_numpy()
    order = np.argsort(times, kind="stable")
    n_test = max(1, round(len(order) * s.test_size))
    rest, test = order[:-n_test], order[-n_test:]
    rng = np.random.default_rng(s.seed)
    val = np.concatenate([rng.permutation(rest[y[rest] == c])[:round((y[rest] == c).sum() * s.val_size
                                                                      / (1 - s.test_size))]
                          for c in np.unique(y[rest])])
    train = np.setdiff1d(rest, val, assume_unique=True)
    for name, idx in {"train": train, "val": val, "test": test}.items():
        pq.write_table(table.take(pa.array(idx)), scratch / f"{name}.parquet")
    return {"seconds": time.perf_counter() - t0}


def floor_train(project: Path, scratch: Path, info: dict) -> dict:
    import mlflow
    import pandas as pd
    import xgboost as xgb
    from bench_train import bare_mlp

    from driftloop.config import load_params
    from driftloop.learn.features import Preprocessor
    from driftloop.learn.fit import recency_weights
    from driftloop.learn.models import Target, pip_requirements, xgb_params

    params = load_params(project / "params.yaml")
    d, t = params.data, params.train
    splits = params.path("splits")
    out: dict = {}
    t0 = time.perf_counter()
    train, val = pd.read_parquet(splits / "train.parquet"), pd.read_parquet(splits / "val.parquet")
    out["read_s"] = time.perf_counter() - t0
    # preprocessing is the stage's own work: outside the floor's clock
    target = Target.fit(params.task, train[d.target])
    pre = Preprocessor.fit(train, d.numerical, d.categorical)
    x_tr, x_va = pre.frame(train), pre.frame(val)
    y_tr, y_va = target.encode(train[d.target]), target.encode(val[d.target])
    w = recency_weights(train[d.time], t.recency_half_life_days)
    x_num, x_cat = pre.arrays(train)
    booster = None
    if "xgb_rounds" in info:
        t1 = time.perf_counter()
        dtr = xgb.DMatrix(x_tr, label=y_tr, weight=w, enable_categorical=True)
        dva = xgb.DMatrix(x_va, label=y_va, enable_categorical=True)
        booster = xgb.train(xgb_params(target, t.xgboost, "cpu", t.seed), dtr,
                            num_boost_round=info["xgb_rounds"], evals=[(dva, "val")],
                            verbose_eval=False)
        out["xgb_s"] = time.perf_counter() - t1
        booster.save_model(scratch / "booster.json")
    if "mlp_epochs" in info:
        hp = t.mlp.model_copy(update={"device": "cpu"})
        rate = bare_mlp(pre, x_num, x_cat, y_tr, hp, info["mlp_epochs"], "cpu")
        out["mlp_s"] = info["mlp_epochs"] * len(y_tr) / rate
    if booster is not None:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # the floor's store: plain files
        mlflow.set_tracking_uri((scratch / "mlruns").as_uri())
        t1 = time.perf_counter()
        with mlflow.start_run() as run:
            mlflow.xgboost.log_model(booster, name="model", pip_requirements=pip_requirements())
        out["log_model_s"] = time.perf_counter() - t1
        out["run_id"] = run.info.run_id
    out["seconds"] = sum(v for k, v in out.items() if k.endswith("_s"))
    return out


def floor_evaluate(project: Path, scratch: Path, info: dict) -> dict:
    import pandas as pd
    import xgboost as xgb
    from sklearn.metrics import brier_score_loss, f1_score, roc_auc_score

    from driftloop.config import load_params
    from driftloop.learn.features import Preprocessor

    params = load_params(project / "params.yaml")
    d = params.data
    pre = Preprocessor.fit(pd.read_parquet(params.path("splits") / "train.parquet",
                                           columns=d.features), d.numerical, d.categorical)
    booster = xgb.Booster(model_file=scratch / "booster.json")
    t0 = time.perf_counter()
    test = pd.read_parquet(params.path("splits") / "test.parquet")
    p = booster.predict(xgb.DMatrix(pre.frame(test), enable_categorical=True))
    y = test[d.target].to_numpy()
    scores = {"auc": roc_auc_score(y, p), "brier": brier_score_loss(y, p),
              "f1": f1_score(y, p >= 0.5)}
    return {"seconds": time.perf_counter() - t0, **scores}


def floor_register(project: Path, scratch: Path, info: dict) -> dict:
    import mlflow

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    mlflow.set_tracking_uri((scratch / "mlruns").as_uri())
    t0 = time.perf_counter()
    mv = mlflow.register_model(f"runs:/{info['run_id']}/model", "bench-scale")
    mlflow.MlflowClient().set_registered_model_alias("bench-scale", "champion", mv.version)
    return {"seconds": time.perf_counter() - t0}


def flow_job(project: Path, scratch: Path, info: dict) -> dict:
    from flows.train import train

    t0 = time.perf_counter()
    state = train(trigger="manual", return_state=True)
    seconds = time.perf_counter() - t0
    if not state.is_completed():
        raise RuntimeError(f"the train flow in {project} ended {state.type}: {state.message}")
    return {"seconds": seconds}


def _stage(name: str):
    return lambda project, scratch, info: stage_job(name, project, scratch, info)


JOBS = {**{f"stage_{s}": _stage(s) for s in STAGES},
        "floor_ingest": floor_ingest, "floor_validate": floor_validate, "floor_split": floor_split,
        "floor_train": floor_train, "floor_evaluate": floor_evaluate,
        "floor_register": floor_register, "flow": flow_job}


def child(job: str, project: Path, scratch: Path, info: dict) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    result = JOBS[job](project, scratch, info)
    kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(MARK + json.dumps({**result, "peak_rss": kib * 1024}, default=str), flush=True)


# ---------------------------------------------------------------- the driver
def run_job(job: str, project: Path, scratch: Path, info: dict | None = None,
            env: dict[str, str] | None = None) -> dict:
    from driftloop.services import offline_env

    cmd = [sys.executable, str(Path(__file__).resolve()), "--job", job, "--project", str(project),
           "--scratch", str(scratch), "--info", json.dumps(info or {})]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=project, env=env or offline_env(), capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    lines = [x for x in proc.stdout.splitlines() if x.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{job} in {project} exited {proc.returncode}:\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    # each stage logs its own time (driftloop.lock.stage_run); in the flow, through Prefect
    done = list(STAGE_DONE.finditer(proc.stdout + proc.stderr))
    logged = {m[1]: float(m[2]) for m in done}
    lazy_waits = {m[1]: float(m[3]) for m in done if m[3] is not None}
    return {**json.loads(lines[-1][len(MARK):]), "process_s": wall, "stages_logged": logged,
            "lazy_waits": lazy_waits}


def make_project(dest: Path, rows_per_week: int, weeks: int, mlp_epochs: int | None) -> Path:
    """A copy of the project's files (no data, reports, models or dvc.lock) in its own git
    repository, with the suite's per-batch row-count ceiling raised to the batch size."""
    import yaml

    from driftloop.stack import copy_project_files

    copy_project_files(ROOT, dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["simulate"].update(rows_per_week=rows_per_week, weeks=weeks)
    params["ingest"]["window_weeks"] = weeks
    if mlp_epochs is not None:
        params["train"]["mlp"]["max_epochs"] = mlp_epochs
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    suite_path = dest / params["paths"]["suite"]
    suite = json.loads(suite_path.read_text())
    for e in suite["expectations"]:
        if e["type"] == "expect_table_row_count_to_be_between" \
                and e.get("meta", {}).get("severity", "error") == "error":
            e["kwargs"]["max_value"] = max(e["kwargs"]["max_value"], 2 * rows_per_week)
    suite_path.write_text(json.dumps(suite, indent=2))
    (dest / params["paths"]["landing"]).mkdir(parents=True, exist_ok=True)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit",
                 "-qm", "bench_scale copy"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


def init_tracking(project: Path) -> float:
    """Create the project's MLflow store (a fresh SQLite store runs all of MLflow's schema
    migrations, once per project): a project that trained before has it. Returns seconds."""
    from driftloop.services import offline_env

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from driftloop import tracking; from driftloop.config "
                    "import load_params; tracking.setup(load_params('params.yaml'))"],
                   cwd=project, env={**offline_env(), "PYTHONPATH": str(ROOT)}, check=True,
                   capture_output=True)
    return time.perf_counter() - t0


def land_batches(project: Path, batches: list[Path]) -> None:
    from driftloop.config import load_params

    landing = load_params(project / "params.yaml").path("landing")
    for b in batches:
        shutil.copy2(b, landing / b.name)


def simulate_batches(folder: Path, rows: int, weeks: int) -> list[Path]:
    from driftloop.config import load_params
    from driftloop.simulate import run as simulate

    params = load_params(folder / "params.yaml")
    return simulate(params, list(range(weeks)), None, out_dir=folder / "batches")


def run_flow(project: Path, scratch: Path) -> dict:
    from driftloop.services import Stack, free_port

    stack = Stack(scratch / "stack", prefect_port=free_port(), mlflow_port=free_port())
    stack.root.mkdir(parents=True, exist_ok=True)
    try:
        stack.start_prefect()
        env = {**stack.env(), "DRIFTLOOP_PARAMS": str(project / "params.yaml"),
               "DRIFTLOOP_ROOT": str(project), "PREFECT_LOGGING_LEVEL": "INFO"}
        return run_job("flow", project, scratch, env=env)
    finally:
        stack.stop()


def fmt_mem(b: float) -> str:
    return f"{b / GIB:.2f} GiB" if b >= GIB else f"{b / 2 ** 20:.0f} MiB"


def bench(rows: int, weeks: int, mlp_epochs: int | None, flow: bool) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        a = make_project(folder / "stages", -(-rows // weeks), weeks, mlp_epochs)
        batches = simulate_batches(a, rows, weeks)
        land_batches(a, batches)
        first_store_s = init_tracking(a)
        scratch = folder / "scratch"
        scratch.mkdir()
        res: dict[str, dict] = {}
        for s in STAGES:
            res[s] = {"stage": run_job(f"stage_{s}", a, scratch)}
            print(f"  {s}: stage {res[s]['stage']['seconds']:.1f}s", flush=True)
        info = {k: res["train"]["stage"][k] for k in ("xgb_rounds", "mlp_epochs")
                if k in res["train"]["stage"]}
        out = {"rows": rows, "stages": res, "info": info, "store_init_s": first_store_s}
        if flow:  # before the floors: the machine's speed drifts, and these two are compared
            b = make_project(folder / "flow", -(-rows // weeks), weeks, mlp_epochs)
            land_batches(b, batches)
            init_tracking(b)
            out["flow"] = run_flow(b, folder / "flow-scratch")
            print(f"  flow: {out['flow']['seconds']:.1f}s", flush=True)
        for s in STAGES:
            res[s]["floor"] = run_job(f"floor_{s}", a, scratch, info)
            if s == "train":
                info["run_id"] = res[s]["floor"].get("run_id")
            print(f"  {s}: floor {res[s]['floor']['seconds']:.1f}s", flush=True)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(r: dict) -> None:
    res, rows = r["stages"], r["rows"]
    print(f"\n== {rows:,} rows (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
          f" at the end) ==")
    print(f"{'stage':<10}{'stage s':>9}{'floor s':>9}{'ratio':>7}{'stage peak':>12}"
          f"{'floor peak':>12}  process s (with imports)")
    for s in STAGES:
        st, fl = res[s]["stage"], res[s]["floor"]
        print(f"{s:<10}{st['seconds']:>9.2f}{fl['seconds']:>9.2f}"
              f"{st['seconds'] / max(fl['seconds'], 1e-9):>7.2f}{fmt_mem(st['peak_rss']):>12}"
              f"{fmt_mem(fl['peak_rss']):>12}  {st['process_s']:.1f} (lazy imports "
              f"{st['lazy_import_s']:.1f})")
    stage_sum = sum(res[s]["stage"]["seconds"] for s in STAGES)
    floor_sum = sum(res[s]["floor"]["seconds"] for s in STAGES)
    print(f"{'sum':<10}{stage_sum:>9.2f}{floor_sum:>9.2f}{stage_sum / floor_sum:>7.2f}")
    tr, ft = res["train"]["stage"], res["train"]["floor"]
    print(f"not timed: creating the project's MLflow store (once per project, schema "
          f"migrations) {r['store_init_s']:.1f}s; imports before each stage's clock")
    at_once = (f" at the same time (threads {tr['threads']}), {tr['fit_s']:.1f}s in all, against "
               f"the floors one after another" if tr.get("threads") else "")
    print(f"train detail{at_once}: stage xgboost {tr.get('xgb_s', 0):.1f}s ({tr.get('xgb_rounds')} "
          f"rounds) vs xgb.train {ft.get('xgb_s', 0):.1f}s; stage MLP {tr.get('mlp_s', 0):.1f}s "
          f"({tr.get('mlp_epochs')} epochs) vs bare torch {ft.get('mlp_s', 0):.1f}s; stage outside "
          f"fitting (reading the splits, MLflow save/log, signature, reference) "
          f"{tr['seconds'] - tr['fit_s']:.1f}s vs reading {ft.get('read_s', 0):.1f}s + log_model "
          f"{ft.get('log_model_s', 0):.1f}s; chosen {tr.get('chosen')}")
    if "flow" not in r:
        return
    f = r["flow"]
    own = f["stages_logged"]
    if set(own) != set(STAGES):
        raise RuntimeError(f"the flow's log names stage times for {sorted(own)}, not {STAGES}")
    print("the flow's stages, their own time (logged by each): "
          + ", ".join(f"{s} {own[s]:.1f}s" for s in STAGES) + f"; sum {sum(own.values()):.1f}s")
    # measured inside the same run, so it does not carry the run-to-run noise of the stages
    # (what a stage imports inside run() counts as the stage's: the stage runs above import
    # it before their clocks, so there `lazy import` shows what that is)
    outside = f["seconds"] - sum(own.values())
    mlflow_train = max(0.0, tr["seconds"] - tr["fit_s"] - ft.get("read_s", 0.0))
    # a stage the stage server started may have waited for it to import the stage's own
    # LAZY_IMPORTS: run alone, the stage imports those inside run(), in its own time
    lazy_wait = sum(f.get("lazy_waits", {}).values())
    overhead = outside - lazy_wait + mlflow_train
    peak = max([f["peak_rss"]] + [res[s][k]["peak_rss"] for s in STAGES for k in ("stage",)])
    print(f"whole train flow (Prefect + dvc repro + MLflow): {f['seconds']:.1f}s, peak "
          f"{fmt_mem(f['peak_rss'])} (largest process of its tree)")
    ratio = f["seconds"] / floor_sum
    print(f"  flow / sum of floors: {ratio:.2f}x (goal <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})")
    print(f"  peak memory of any stage process: {fmt_mem(peak)} (goal < 4 GiB: "
          f"{'met' if peak < 4 * GIB else 'NOT met'})")
    share = overhead / f["seconds"]
    print(f"  Prefect + DVC + MLflow overhead: {overhead:.1f}s = {share:.1%} of the flow "
          f"(flow outside its stages' own time {outside:.1f}s, less {lazy_wait:.1f}s the stages "
          f"waited for their own LAZY_IMPORTS, + train's MLflow/saving {mlflow_train:.1f}s, its "
          f"time outside fitting less reading the splits; goal < 10%: "
          f"{'met' if share < 0.10 else 'NOT met'}; {(overhead + lazy_wait) / f['seconds']:.1%} "
          f"counting those waits too)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--weeks", type=int, default=8, help="weekly batch files (the window)")
    ap.add_argument("--mlp-epochs", type=int, default=None,
                    help="cap train.mlp.max_epochs (default: params.yaml's)")
    ap.add_argument("--no-flow", action="store_true", help="stages and floors only")
    ap.add_argument("--dask", action="store_true",
                    help="also run benchmarks/bench_dask.py (XGBoost on a LocalCluster)")
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--info", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.job:
        return child(args.job, args.project, args.scratch, json.loads(args.info))
    results = []
    for rows in args.rows:
        print(f"{rows:,} rows in {args.weeks} weekly batches ...", flush=True)
        results.append(bench(rows, args.weeks, args.mlp_epochs, not args.no_flow))
        report(results[-1])
    if args.dask and (ROOT / "benchmarks/bench_dask.py").exists():
        import bench_dask

        sys.argv = ["bench_dask.py"]  # its own defaults: 1e6 rows, 2 workers
        bench_dask.main()


if __name__ == "__main__":
    main()
