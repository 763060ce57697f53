"""A model loaded for scoring says when it was saved with other package versions than this
environment has (real MLflow pyfunc save and load, no store needed)."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pytest

from driftloop import tracking
from driftloop.learn.models import pip_requirements


class Constant(mlflow.pyfunc.PythonModel):
    def __init__(self, requirements: list[str] | None):
        if requirements is not None:
            self.requirements = requirements

    def predict(self, context, model_input, params=None):
        return np.zeros(len(model_input))


@pytest.mark.parametrize("pins, warned", [
    ("current", False),
    (["numpy==0.0.1", "no-such-package-here==1.0"], True),
])
def test_load_model_names_each_package_saved_at_another_version(tmp_path, caplog, pins, warned):
    pins = pip_requirements() if pins == "current" else pins
    path = tmp_path / "model"
    mlflow.pyfunc.save_model(path=str(path), python_model=Constant(pins),
                             pip_requirements=pip_requirements())
    with caplog.at_level(logging.WARNING, logger="driftloop.tracking"):
        model = tracking.load_model(str(path))
    assert model.predict(np.zeros((3, 1))).tolist() == [0, 0, 0]
    lines = [r.getMessage() for r in caplog.records if r.name == "driftloop.tracking"]
    if not warned:
        assert lines == []
        return
    assert len(lines) == 1, lines
    assert "numpy==0.0.1, no-such-package-here==1.0" in lines[0]
    assert f"numpy {np.__version__}" in lines[0] and "no-such-package-here not installed" in lines[0]
    assert "Install the project from its lock file, or retrain" in lines[0]


def test_a_model_without_recorded_versions_gets_mlflows_own_check(tmp_path, monkeypatch):
    calls = []
    real = mlflow.pyfunc.load_model
    monkeypatch.setattr(mlflow.pyfunc, "load_model",
                        lambda uri, **kw: calls.append(kw) or real(uri, **kw))
    mlflow.pyfunc.save_model(path=str(tmp_path / "m"), python_model=Constant(None),
                             pip_requirements=pip_requirements())
    tracking.load_model(str(tmp_path / "m"))
    assert calls == [{"suppress_warnings": True}, {}]  # the second load runs MLflow's check
