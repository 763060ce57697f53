"""`train.engine: dask`: XGBoost trained by xgboost.dask on a LocalCluster through the real
train stage, saved as the same pyfunc as the local path, and a scheduler that is not there."""

from __future__ import annotations

import time
from datetime import date
from functools import cache

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from driftloop.learn.dask_engine import DaskEngineError, dask_client, dask_device, row_chunks
from tests.helpers import demo_params, free_port

START = date(2026, 1, 5)


def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Simulated weeks: three to train on, one for val, the next for test."""
    from driftloop.simulate import simulate_week

    week = [simulate_week(w, rows=1500, seed=3, start=START, drift=False) for w in range(5)]
    return pd.concat(week[:3], ignore_index=True), week[3], week[4]


@cache
def base_params():
    return demo_params()


def project(root, **train):
    """The demo params rooted at `root`: XGBoost only, few rounds, `train` changes applied."""
    p = base_params()
    t = p.train
    hp = t.xgboost.model_copy(update={"n_estimators": 150, "early_stopping_rounds": 15,
                                      "n_jobs": 1})
    dask = t.dask.model_copy(update={"workers": 2, "threads_per_worker": 1, "memory_limit": "0",
                                     **train.pop("dask", {})})
    return p.model_copy(update={"root": root, "train": t.model_copy(update={
        "candidates": ["xgboost"], "xgboost": hp, "dask": dask, **train})})


@pytest.fixture(scope="module")
def data():
    return frames()


@pytest.fixture(scope="module")
def dask_stage(data, tmp_path_factory):
    """The train stage run once with engine: dask on a 2-process LocalCluster; `workers`: the
    workers each dask training saw."""
    from driftloop.io import write_parquet
    from driftloop.learn import dask_engine
    from pipelines import train as train_stage

    train, val, _ = data
    params = project(tmp_path_factory.mktemp("dask-project"), engine="dask")
    write_parquet(params.path("splits") / "train.parquet", train)
    write_parquet(params.path("splits") / "val.parquet", val)
    workers, real = [], dask_engine.train_xgboost_dask

    def spy(client, *args, **kwargs):
        workers.append(len(client.scheduler_info()["workers"]))
        return real(client, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dask_engine, "train_xgboost_dask", spy)
        summary = train_stage.run(params)
    return params, summary, workers


def test_dask_trained_model_is_as_good_as_the_local_one(dask_stage, data, tmp_path):
    import mlflow.pyfunc
    import xgboost as xgb

    from driftloop.learn.fit import fit_best
    from driftloop.learn.models import DriftloopModel

    params, summary, workers = dask_stage
    train, val, test = data
    assert workers == [2]  # XGBoost went through the cluster, on both workers
    saved = mlflow.pyfunc.load_model(str(params.path("model")))
    inner = saved.unwrap_python_model()
    assert type(inner) is DriftloopModel and isinstance(inner.model, xgb.Booster)
    assert summary["chosen"] == "xgboost" and summary["device"] == {"xgboost": "cpu"}
    local = fit_best(project(tmp_path, engine="local"), train, val)
    y = test[params.data.target]
    auc_dask = roc_auc_score(y, saved.predict(test))
    auc_local = roc_auc_score(y, local.model.predict(None, test))
    assert auc_local > 0.7  # a model worth comparing with
    assert abs(auc_dask - auc_local) <= 0.01, (auc_dask, auc_local)


def test_saved_dask_model_scores_raw_rows(dask_stage, data):
    import mlflow.pyfunc

    params, _, _ = dask_stage
    raw = data[2].head(50).copy()  # every column as it lands, target and ids included
    raw.loc[raw.index[0], "region"] = "a region never seen"
    raw.loc[raw.index[1], "income"] = None
    raw["income"] = raw["income"].astype(object)  # as a CSV feed hands it over
    pred = mlflow.pyfunc.load_model(str(params.path("model"))).predict(raw)
    assert isinstance(pred, np.ndarray) and pred.shape == (50,)
    assert np.isfinite(pred).all() and ((pred > 0) & (pred < 1)).all()
    again = mlflow.pyfunc.load_model(str(params.path("model"))).predict(raw.iloc[::-1])
    np.testing.assert_allclose(again[::-1], pred)


def test_weights_reach_the_workers(data):
    """Balanced class weights on the cluster raise the scores of the rare class, as locally."""
    import xgboost as xgb

    from driftloop.learn.dask_engine import train_xgboost_dask
    from driftloop.learn.features import Preprocessor
    from driftloop.learn.models import Target

    train, val, test = data
    p = base_params()
    pre = Preprocessor.fit(train, p.data.numerical, p.data.categorical)
    target = Target.fit("binary", train[p.data.target])
    hp = p.train.xgboost.model_copy(update={"n_estimators": 40, "early_stopping_rounds": 40})
    one = p.train.dask.model_copy(update={"workers": 1, "memory_limit": "0"})
    with dask_client(one) as (client, host):
        fits = {cw: train_xgboost_dask(client, pre, train, val, target, hp, 0, cw,
                                       tracker_host=host) for cw in ("none", "balanced")}
    dtest = xgb.DMatrix(pre.frame(test), enable_categorical=True)
    mean = {cw: float(fit.model.predict(dtest).mean()) for cw, fit in fits.items()}
    assert mean["balanced"] > mean["none"] + 0.1, mean


def test_a_scheduler_that_is_not_there_fails_fast_naming_it(data, tmp_path):
    from driftloop.learn.fit import fit_best

    train, val, _ = data
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    params = project(tmp_path, engine="dask", dask={"address": address, "connect_timeout_s": 1})
    t0 = time.perf_counter()
    with pytest.raises(DaskEngineError) as err:
        fit_best(params, train, val)
    assert time.perf_counter() - t0 < 15
    msg = str(err.value)
    assert address in msg and "train.dask.address" in msg and "dask scheduler" in msg


@pytest.mark.parametrize("rows, parts, sizes", [(10, 2, [5, 5]), (7, 3, [2, 3, 2]),
                                                (2, 4, [1, 1]), (0, 2, []), (5, 1, [5])])
def test_row_chunks_cover_every_row_once(rows, parts, sizes):
    chunks = row_chunks(rows, parts)
    assert [c.stop - c.start for c in chunks] == sizes
    assert np.array_equal(np.concatenate([np.arange(rows)[c] for c in chunks] or [[]]),
                          np.arange(rows))


@pytest.mark.parametrize("requested, gpus, device", [
    ("auto", [True, True], "cuda"), ("auto", [True, False], "cpu"), ("auto", [], "cpu"),
    ("cuda", [False], "cuda"), ("cpu", [True], "cpu")])
def test_dask_device(requested, gpus, device):
    assert dask_device(requested, gpus) == device


def test_a_scheduler_without_workers_fails_naming_it():
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as empty:
        dp = base_params().train.dask.model_copy(update={"address": empty.scheduler_address,
                                                         "connect_timeout_s": 1})
        with pytest.raises(DaskEngineError, match="has no workers") as err, dask_client(dp):
            pass
    assert empty.scheduler_address in str(err.value) and "dask worker" in str(err.value)
