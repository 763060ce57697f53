"""A bad batch through the real train flow (real Prefect API, DVC, MLflow) and back: it stops
at validate with a one-line reason and an artifact, lands in quarantine byte for byte, every
earlier output is restored, and once fixed and released the next run trains on it."""

from __future__ import annotations

import hashlib
import json
import os

import pandas as pd
import pytest
from typer.testing import CliRunner

from driftloop.io import read_window
from tests.helpers import make_project, simulate

pytestmark = pytest.mark.slow
BAD = "batch_2026-02-16"


def run_flow(project):
    from flows.train import train

    os.environ["DRIFTLOOP_PARAMS"] = str(project / "params.yaml")
    try:
        return train(trigger="manual", return_state=True)
    finally:
        os.environ.pop("DRIFTLOOP_PARAMS", None)


def digests(project) -> dict:
    files = [*sorted((project / "data/validated/window").glob("*")),
             *sorted((project / "data/splits").glob("*"))]
    return {str(f.relative_to(project)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def champion(project):
    from mlflow import MlflowClient

    from driftloop import tracking
    from driftloop.config import load_params
    from driftloop.tracking import current_champion

    params = load_params(project / "params.yaml")
    tracking.setup(params)  # leaves MLFLOW_TRACKING_URI alone for the next test
    champ = current_champion(MlflowClient(), params.project.name)
    return champ.version if champ else None


def contract_artifact(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["contract-failures"])))
    return [a for a in arts if str(a.flow_run_id) == str(flow_run_id)]


def test_bad_batch_is_quarantined_then_released_and_trained_on(tmp_path, prefect_api):
    from driftloop.cli import app
    from driftloop.simulate import simulate_week

    project = make_project(tmp_path)
    simulate(project, list(range(6)))
    assert run_flow(project).is_completed()
    before, champ = digests(project), champion(project)

    week6 = simulate_week(6, rows=500, seed=7, start=pd.Timestamp("2026-01-05").date(), drift=False)
    landed = project / f"data/landing/{BAD}.parquet"
    week6.assign(age=week6["age"].where(week6.index % 10 != 0, 140.0)).to_parquet(landed)
    landed_bytes = landed.read_bytes()

    state = run_flow(project)
    assert state.is_failed()
    msg = state.message
    assert "validate" in msg and "'age'" in msg and f"{BAD}.parquet" in msg and "\n" not in msg, msg
    assert f"data/quarantine/{BAD}" in msg
    (art,) = contract_artifact(state.state_details.flow_run_id)
    assert f"{BAD}.parquet" in art.data and "age" in art.data

    folder = project / "data/quarantine" / BAD
    assert (folder / f"{BAD}.parquet").read_bytes() == landed_bytes
    assert json.loads((folder / "report.json").read_text())["failures"][0]["rows"][:2] == [0, 10]
    assert not (project / f"data/raw/{BAD}.parquet").exists()
    assert digests(project) == before and champion(project) == champ  # nothing moved

    cli = CliRunner()
    params = ["--params", str(project / "params.yaml")]
    listed = cli.invoke(app, ["quarantine", "list", *params])
    assert listed.exit_code == 0 and BAD in listed.output and "age" in listed.output
    week6.to_parquet(folder / f"{BAD}.parquet")  # the producer re-delivers a fixed file
    released = cli.invoke(app, ["quarantine", "release", BAD, *params])
    assert released.exit_code == 0, released.output

    state = run_flow(project)
    assert state.is_completed(), state.message
    assert (project / f"data/raw/{BAD}.parquet").exists()
    validated = read_window(project / "data/validated/window").to_pandas()
    assert set(week6["application_id"]) <= set(validated["application_id"])
    assert cli.invoke(app, ["quarantine", "list", *params]).output.strip() == "no quarantined batches"
