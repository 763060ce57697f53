"""XGBoost on Dask (`train.engine: dask`): the same booster as the local path, trained by
`xgboost.dask` on the preprocessed rows spread over the workers.

The cluster lives inside the train stage: with an empty `train.dask.address` a LocalCluster
is started and closed here; a scheduler address is only connected to and disconnected from.
Only pandas frames and XGBoost run on the workers, so they need this project's pandas and
xgboost versions, not the project itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from driftloop.config import DaskParams, XGBParams
from driftloop.learn.features import Preprocessor
from driftloop.learn.models import Fitted, Target, xgb_fitted, xgb_params, xgb_weights

log = logging.getLogger(__name__)
LOCAL_HOST = "127.0.0.1"   # a LocalCluster and XGBoost's tracker listen here only


class DaskEngineError(RuntimeError):
    pass


def row_chunks(n_rows: int, n_parts: int) -> list[slice]:
    """`n_rows` cut into at most `n_parts` contiguous, near-equal, non-empty slices (pure)."""
    bounds = np.linspace(0, n_rows, max(1, min(n_parts, n_rows)) + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def dask_device(requested: str, worker_gpus: list[bool]) -> str:
    """auto: cuda when every worker sees a GPU, else cpu; cpu and cuda as asked (pure). A cuda
    worker without a GPU trains on its CPU with XGBoost's warning, and the fit reports it."""
    if requested == "auto":
        return "cuda" if worker_gpus and all(worker_gpus) else "cpu"
    return requested


def _worker_gpus(client) -> list[bool]:
    """Does each worker see an NVIDIA GPU? Asked with standard-library calls only, so workers
    need nothing of this project."""
    smi = client.run(shutil.which, "nvidia-smi")
    hidden = client.run(os.environ.get, "CUDA_VISIBLE_DEVICES")
    return [smi[w] is not None and hidden[w] not in ("", "-1") for w in smi]


@contextmanager
def dask_client(p: DaskParams) -> Iterator[tuple[object, str | None]]:
    """(client, tracker host) for `train.dask`; the host is None for a remote scheduler
    (XGBoost's tracker then runs on the scheduler's own address)."""
    from distributed import Client, LocalCluster

    if p.address:
        try:
            client = Client(p.address, timeout=p.connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise DaskEngineError(
                f"train.dask.address {p.address!r}: no Dask scheduler answered within "
                f"{p.connect_timeout_s:g}s ({type(exc).__name__}: {exc}); start one (`dask "
                "scheduler`, a KubeCluster or a SLURMCluster) and put the address it prints in "
                "train.dask.address in params.yaml, or set it to \"\" to train on a local "
                "cluster") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=p.connect_timeout_s)
            except TimeoutError:
                raise DaskEngineError(
                    f"train.dask.address {p.address!r}: the scheduler has no workers after "
                    f"{p.connect_timeout_s:g}s; start some (`dask worker {p.address}`) or scale "
                    "the cluster up, then run again") from None
            with client.as_current():  # xgboost.dask looks the client up; none is made global
                yield client, None
        return
    processes = p.workers > 1  # XGBoost allows one worker per process
    try:
        cluster = LocalCluster(n_workers=p.workers, threads_per_worker=p.threads_per_worker,
                               memory_limit=p.memory_limit, processes=processes,
                               # no dashboard; the health endpoints the scheduler and workers
                               # always serve listen on free local ports (not 8787, not 0.0.0.0)
                               dashboard_address=None, worker_dashboard_address=f"{LOCAL_HOST}:0",
                               scheduler_kwargs={"dashboard_address": f"{LOCAL_HOST}:0"},
                               **({"host": LOCAL_HOST} if processes else {}))
    except Exception as exc:  # noqa: BLE001 - whatever stops it, name the params that sized it
        raise DaskEngineError(
            f"train.dask: a LocalCluster of {p.workers} worker(s) x {p.threads_per_worker} "
            f"thread(s), memory_limit {p.memory_limit!r}, did not start ({type(exc).__name__}: "
            f"{exc}); fix train.dask in params.yaml or set train.engine: local") from exc
    with cluster, Client(cluster, set_as_default=False) as client, client.as_current():
        yield client, LOCAL_HOST


def _spread(client, data: pd.DataFrame | pd.Series, workers: list[str]):
    """A dask collection whose i-th partition sits on workers[i]: every worker gets rows of
    every matrix (XGBoost cannot learn categories on a worker without rows)."""
    import dask.dataframe as dd

    futures = [client.scatter(data.iloc[part], workers=[w], hash=False)
               for part, w in zip(row_chunks(len(data), len(workers)), workers, strict=True)]
    return dd.from_delayed(futures, meta=data.iloc[:0], verify_meta=False)


def train_xgboost_dask(client, pre: Preprocessor, train: pd.DataFrame, val: pd.DataFrame,
                       target: Target, p: XGBParams, seed: int, class_weight: str = "none",
                       sample_weight: np.ndarray | None = None,
                       tracker_host: str | None = None) -> Fitted:
    """`train_xgboost` on the cluster behind `client`: same parameters, weights and early
    stopping on val; each worker uses its own thread count (not `n_jobs`)."""
    from xgboost import dask as dxgb
    from xgboost.collective import Config

    workers = sorted(client.scheduler_info()["workers"])
    device = dask_device(p.device, _worker_gpus(client))
    used = workers[:min(len(workers), len(train), len(val))]
    x_tr, x_va = pre.frame(train), pre.frame(val)
    y = target.encode(train[target.column])
    w = xgb_weights(target, y, class_weight, sample_weight)
    dtrain = dxgb.DaskQuantileDMatrix(
        client, _spread(client, x_tr, used), _spread(client, pd.Series(y, index=x_tr.index), used),
        weight=_spread(client, pd.Series(w, index=x_tr.index), used), enable_categorical=True)
    y_va = pd.Series(target.encode(val[target.column]), index=x_va.index)
    dval = dxgb.DaskQuantileDMatrix(client, _spread(client, x_va, used), _spread(client, y_va, used),
                                    enable_categorical=True, ref=dtrain)
    params = {k: v for k, v in xgb_params(target, p, device, seed).items() if k != "nthread"}
    t0 = time.perf_counter()
    out = dxgb.train(client, params, dtrain, num_boost_round=p.n_estimators,
                     evals=[(dval, "val")], early_stopping_rounds=p.early_stopping_rounds,
                     verbose_eval=False,
                     coll_cfg=Config(tracker_host_ip=tracker_host) if tracker_host else None)
    return xgb_fitted(out["booster"], out["history"]["val"], p.device,
                      time.perf_counter() - t0, engine=f"dask, {len(used)} worker(s)")


def fit_xgboost_on_dask(dp: DaskParams, pre: Preprocessor, train: pd.DataFrame,
                        val: pd.DataFrame, target: Target, p: XGBParams, seed: int,
                        class_weight: str = "none",
                        sample_weight: np.ndarray | None = None) -> Fitted:
    """Open the cluster `train.dask` names, train, close it (a remote one is only left)."""
    with dask_client(dp) as (client, tracker_host):
        return train_xgboost_dask(client, pre, train, val, target, p, seed, class_weight,
                                  sample_weight, tracker_host)
