"""Fault: @champion moves between the gate's read and its alias move (a rollback lands while
register is at work). The promotion re-checks under the champion lock and refuses, and says
so on the version's tags and in decision.json. Real MLflow (SQLite), real stage code, in
process, on tiny data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from driftloop.gate import Decision, confirm_promotion
from tests.helpers import make_project, simulate

# the gate promotes any challenger that differs from the champion: the race, not the
# statistics, decides these tests
OVERRIDES = {"register": {"margin": -1.0, "slice_tolerance": 1.0},
             "train": {"candidates": ["xgboost"]},
             "services": {"retries": 1, "backoff_s": 0.1, "timeout_s": 2}}
_BUILT: dict[str, Path] = {}


def load(project: Path, seed: int | None = None):
    """The project's params, with the training seed changed first when given."""
    from driftloop.config import load_params

    if seed is not None:
        raw = yaml.safe_load((project / "params.yaml").read_text())
        raw["train"]["seed"] = seed
        (project / "params.yaml").write_text(yaml.safe_dump(raw))
    return load_params(project / "params.yaml")


def train_and_evaluate(project: Path, seed: int):
    from pipelines import evaluate, train

    params = load(project, seed)
    train.run(params)
    evaluate.run(params)
    return params


def registered_project(tmp_path_factory) -> Path:
    """Built once per session: v1 (first champion) and v2 (promoted over v1, so a rollback
    has somewhere to go), trained in process through the stages' own run()."""
    if "project" not in _BUILT:
        from driftloop.trigger import Trigger
        from pipelines import ingest, register, split, validate

        project = make_project(tmp_path_factory.mktemp("registered"), OVERRIDES)
        simulate(project, list(range(6)))
        params = load(project)
        for stage in (ingest, validate, split):
            stage.run(params)
        for seed in (1, 2):
            register.run(train_and_evaluate(project, seed), Trigger("manual", ""))
        _BUILT["project"] = project
    return _BUILT["project"]


def copy_of(project: Path, dest: Path) -> Path:
    """A copy with its own SQLite store (artifacts stay shared: they are only read)."""
    shutil.copytree(project, dest, symlinks=True)
    return dest


def registry(project: Path):
    from mlflow import MlflowClient

    from driftloop import tracking

    params = load(project)
    tracking.setup(params)
    return MlflowClient(), params.project.name


def champion_of(project: Path) -> str | None:
    from driftloop.tracking import current_champion

    client, name = registry(project)
    champ = current_champion(client, name)
    return str(champ.version) if champ else None


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    return registered_project(tmp_path_factory)


@pytest.mark.parametrize("compared,current,promote", [
    ("2", "2", True), (None, None, True), ("2", "1", False), (None, "1", False), ("2", None, False)])
def test_a_promotion_stands_only_while_the_champion_is_the_one_compared(compared, current, promote):
    d = confirm_promotion(Decision(True, "better"), compared, current)
    assert d.promote is promote
    if not promote:
        assert "moved from" in d.reason and "better" in d.reason
    assert confirm_promotion(Decision(False, "worse"), compared, current) == Decision(False, "worse")


def test_a_rollback_between_read_and_move_is_kept_and_the_promotion_refused(registered, tmp_path,
                                                                             monkeypatch):
    from driftloop import tracking
    from driftloop.trigger import Trigger
    from pipelines import register

    project = copy_of(registered, tmp_path / "p")
    assert champion_of(project) == "2"
    params = train_and_evaluate(project, seed=3)
    real = tracking.register_version

    def rollback_lands_first(*args, **kwargs):
        # the gate has read @champion (v2) and decided; an operator rolls back before the move
        tracking.rollback(params, "v2 misbehaves in production")
        return real(*args, **kwargs)

    monkeypatch.setattr(tracking, "register_version", rollback_lands_first)
    result = register.run(params, Trigger("manual", ""))

    assert champion_of(project) == "1"  # the rollback stands
    assert result["promote"] is False and result["champion_moved"] is True
    assert result["version"] == 3 and result["champion_version"] == 1
    assert "moved from v2 to v1" in result["reason"], result["reason"]
    saved = json.loads((project / "reports/register/decision.json").read_text())
    assert saved["promote"] is False and "moved from v2 to v1" in saved["reason"]
    client, name = registry(project)
    tags = client.get_model_version(name, "3").tags
    assert tags["decision"] == "refused_champion_moved" and "moved from v2 to v1" in tags["reason"]
    assert tags["previous_champion"] == "2"  # what the gate compared against, as evidence
    assert client.get_model_version(name, "2").tags["rolled_back"] == "v2 misbehaves in production"


def test_without_a_race_the_same_challenger_is_promoted(registered, tmp_path):
    """The control: the refusal above comes from the race, not from the gate."""
    from driftloop.trigger import Trigger
    from pipelines import register

    project = copy_of(registered, tmp_path / "p")
    result = register.run(train_and_evaluate(project, seed=3), Trigger("manual", ""))
    assert result["promote"] is True and result["champion_moved"] is False
    assert champion_of(project) == "3"
