"""The loop through the production-shaped stack (driftloop/stack.py): Postgres, a SeaweedFS S3
store, the Prefect server on Postgres, the MLflow server on Postgres serving the bucket's
artifacts, the deployments of prefect.yaml and a process worker, for a copy of the project.

The first champion is trained through train/weekly; a drifted week's check asks for a retrain
and the deployment's trigger runs it. Then the state is looked for where it should be: the
flow runs in Prefect's tables, the versions and the alias in MLflow's, the artifacts and the
DVC cache in the bucket; `dvc pull` in a fresh clone gives the same splits, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.helpers import make_project, run, simulate

pytestmark = [pytest.mark.stack, pytest.mark.slow]
HISTORY = 4                        # labelled weeks of the first training window
# xgboost alone, and a policy that asks at the first drifted batch: a short story
OVERRIDES = {"simulate": {"weeks": HISTORY}, "train": {"candidates": ["xgboost"]},
             "register": {"bootstrap_samples": 50},
             "policy": {"triggers": ["drift"], "consecutive_drift": 1, "min_drift_labels": 0,
                        "cooldown_hours": 0}}
RUN_S = 300                        # one training run through the worker


@pytest.fixture(scope="module")
def story():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from driftloop import simulate as sim
    from driftloop.config import load_params
    from driftloop.runs import run_deployment, wait_for_run
    from driftloop.stack import ServerStack, missing_parts

    if why := missing_parts():
        pytest.skip(why)
    # Postgres runs as an unprivileged user when the tests run as root: it must reach its data
    base = Path(tempfile.mkdtemp(prefix="driftloop-stack-"))
    base.chmod(0o755)
    stack = ServerStack.create(base / "project", base / "state")
    project = make_project(stack.root, {**OVERRIDES, "mlflow": {
        "tracking_uri": stack.mlflow_url, "ui_url": stack.mlflow_url}})
    saved = {k: os.environ.get(k) for k in ("DRIFTLOOP_PARAMS", "PREFECT_WORKER_QUERY_SECONDS")}
    os.environ.update(DRIFTLOOP_PARAMS=str(project / "params.yaml"),  # in-process drift check
                      PREFECT_WORKER_QUERY_SECONDS="2")
    try:
        with temporary_settings(updates={PREFECT_API_URL: stack.prefect_api}):
            t0 = time.monotonic()
            stack.up()
            print(f"stack up: {time.monotonic() - t0:.0f}s")
            params = load_params(project / "params.yaml")
            waits = {"timeout": RUN_S, "worker_gone": stack.worker_gone, "local_worker": True}
            simulate(project, list(range(HISTORY)))
            first = run_deployment("train/weekly", {"trigger": "manual"}, **waits)
            print(f"first training: {first.total_run_time}")
            # two drifted weeks: their labelled rows land for the retrain, the second also
            # arrives unlabelled to be checked
            drifted = [HISTORY, HISTORY + 1]
            sim.run(params, drifted, HISTORY)
            (batch,) = sim.run(params, drifted[-1:], HISTORY, project / "incoming", labelled=False)
            from flows.drift_check import drift_check

            since = datetime.now(UTC)
            check = drift_check(str(batch))
            assert check["policy"]["action"] == "retrain", check["policy"]
            retrain = wait_for_run("train/weekly", since, trigger="drift", poll=1, **waits)
            print(f"drift check: {check['policy']['action']}; retrain: {retrain.total_run_time}; "
                  f"all: {time.monotonic() - t0:.0f}s")
            yield {"stack": stack, "params": params, "runs": [first, retrain], "check": check}
    finally:
        stack.stop()
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        shutil.rmtree(base, ignore_errors=True)


def query(stack, db: str, sql: str, *args) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(stack.db_url("postgres").rsplit("/", 1)[0] + f"/{db}")
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def test_both_training_runs_are_in_prefects_postgres(story):
    stack = story["stack"]
    assert [r.state.is_completed() for r in story["runs"]] == [True, True], story["runs"]
    rows = query(stack, "prefect", """
        SELECT fr.id::text, fr.state_type, fr.parameters->>'trigger' FROM flow_run fr
        JOIN deployment d ON d.id = fr.deployment_id JOIN flow f ON f.id = d.flow_id
        WHERE f.name = 'train' AND d.name = 'weekly' AND NOT fr.auto_scheduled
        ORDER BY fr.created""")
    assert [(r[1], r[2]) for r in rows] == [("COMPLETED", "manual"), ("COMPLETED", "drift")]
    assert [r[0] for r in rows] == [str(r.id) for r in story["runs"]]
    checks = query(stack, "prefect", "SELECT count(*) FROM flow_run fr JOIN flow f ON "
                   "f.id = fr.flow_id WHERE f.name = 'drift-check' AND fr.state_type = 'COMPLETED'")
    assert checks == [(1,)]
    assert not list((stack.state / "prefect").glob("*.db")), "the server wrote an SQLite database"


def test_versions_and_the_champion_alias_are_in_mlflows_postgres(story):
    stack, name = story["stack"], story["params"].project.name
    triggers = query(stack, "mlflow", "SELECT version, value FROM model_version_tags WHERE "
                     "name = %s AND key = 'trigger' ORDER BY version", name)
    assert triggers == [(1, "manual"), (2, "drift")]
    decision = json.loads((story["params"].report_dir("register") / "decision.json").read_text())
    alias = query(stack, "mlflow", "SELECT version FROM registered_model_aliases WHERE name = %s "
                  "AND alias = 'champion'", name)
    assert alias == [(2 if decision["promote"] else 1,)], decision
    (location,) = query(stack, "mlflow", "SELECT artifact_location FROM experiments WHERE "
                        "name = %s", name)
    assert location[0].startswith("mlflow-artifacts:/"), location  # served by the server


def test_model_artifacts_and_the_dvc_cache_are_in_the_bucket(story):
    from driftloop.stack import BUCKET

    stack, params = story["stack"], story["params"]
    s3 = stack.s3()
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for o in page.get("Contents", [])]
    sources = query(stack, "mlflow", "SELECT version, storage_location FROM model_versions "
                    "WHERE name = %s ORDER BY version", params.project.name)
    for version, location in sources:  # mlflow-artifacts:/<exp>/models/<id>/artifacts
        prefix = "mlflow/" + location.split(":/", 1)[1].strip("/") + "/"
        assert f"{prefix}MLmodel" in keys, (version, location, [k for k in keys if "MLmodel" in k])
    assert not params.path("mlflow_artifacts").exists(), "artifacts were written locally"

    lock = yaml.safe_load((params.root / "dvc.lock").read_text())
    outs = [o for stage in lock["stages"].values() for o in stage.get("outs", [])
            if o["path"].startswith(("data/", "models/"))]  # the cached ones (reports are not)
    assert {o["path"] for o in outs} >= {str(params.paths.splits), str(params.paths.model)}
    for out in outs:
        md5 = out["md5"]
        assert f"dvc/files/md5/{md5[:2]}/{md5[2:]}" in keys, out["path"]


def test_dvc_pull_in_a_fresh_clone_gives_the_same_splits(story, tmp_path):
    stack, params = story["stack"], story["params"]
    root = params.root
    run(["git", "add", "dvc.lock"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "trained"], root)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(root), str(clone)], tmp_path)
    stack.configure_dvc(clone)
    run(["dvc", "pull", "split"], clone)
    splits = sorted(p.relative_to(root) for p in params.path("splits").rglob("*") if p.is_file())
    assert splits
    for rel in splits:
        assert (clone / rel).read_bytes() == (root / rel).read_bytes(), rel


def test_a_kubernetes_work_pool_and_a_train_deployment_on_it_are_created(story):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    stack = story["stack"]
    name = stack.deploy_on_pool("kubernetes", image="driftloop-worker:test")
    with temporary_settings(updates={PREFECT_API_URL: stack.prefect_api}), \
            get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(name)
        pool = client.read_work_pool(dep.work_pool_name)
    assert name == "train/weekly-kubernetes" and pool.type == "kubernetes"
    assert dep.entrypoint == "flows/train.py:train" and dep.job_variables["image"] == "driftloop-worker:test"
    assert "job_manifest" in pool.base_job_template["job_configuration"]
    workdir = dep.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"]
    assert workdir == "/workspace"  # the image's project folder, not this machine's
