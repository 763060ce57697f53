"""The two candidate learners (XGBoost, a PyTorch MLP) and the pyfunc that ships them."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import mlflow.pyfunc
import numpy as np
import pandas as pd

from pipelines.config import MLPParams, XGBParams
from pipelines.devices import choose_device, cuda_visible, torch_cuda_ok
from pipelines.features import Preprocessor

log = logging.getLogger(__name__)


@dataclass
class Fitted:
    kind: str
    model: object
    device: str
    best_iteration: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


# ---------------------------------------------------------------- XGBoost
def train_xgboost(pre: Preprocessor, train: pd.DataFrame, val: pd.DataFrame, target: str,
                  p: XGBParams, seed: int) -> Fitted:
    import xgboost as xgb

    device = choose_device(p.device, cuda_available=cuda_visible())
    dtrain = xgb.DMatrix(pre.frame(train), label=train[target], enable_categorical=True)
    dval = xgb.DMatrix(pre.frame(val), label=val[target], enable_categorical=True)
    params = {
        "objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "tree_method": "hist",
        "device": device, "learning_rate": p.learning_rate, "max_depth": p.max_depth,
        "min_child_weight": p.min_child_weight, "subsample": p.subsample,
        "colsample_bytree": p.colsample_bytree, "nthread": p.n_jobs, "seed": seed,
        "max_cat_to_onehot": 1,
    }
    evals: dict = {}
    t0 = time.perf_counter()
    booster = xgb.train(params, dtrain, num_boost_round=p.n_estimators, evals=[(dval, "val")],
                        early_stopping_rounds=p.early_stopping_rounds, evals_result=evals,
                        verbose_eval=False)
    seconds = time.perf_counter() - t0
    ran_on = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
    log.info("xgboost trained on %s: %d rounds (best %d) in %.1fs", ran_on,
             booster.num_boosted_rounds(), booster.best_iteration, seconds)
    return Fitted("xgboost", booster, ran_on, int(booster.best_iteration), seconds,
                  {f"val_{k}": [float(x) for x in v] for k, v in evals["val"].items()})


# ---------------------------------------------------------------- PyTorch MLP
def _mlp_class():
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        """Embeddings for categoricals, concatenated with numerics, then an MLP."""

        def __init__(self, n_num: int, cardinalities: list[int], p: MLPParams):
            super().__init__()
            self.embeddings = nn.ModuleList(
                nn.Embedding(n, min(p.embedding_dim, (n + 1) // 2 + 1)) for n in cardinalities)
            width = n_num + sum(e.embedding_dim for e in self.embeddings)
            layers: list[nn.Module] = []
            for h in p.hidden:
                layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(p.dropout)]
                width = h
            layers.append(nn.Linear(width, 1))
            self.net = nn.Sequential(*layers)

        def forward(self, x_num, x_cat):
            parts = [x_num] + [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
            return self.net(torch.cat(parts, dim=1)).squeeze(1)

    return TabularMLP


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(np.unique(y)) > 1 else float("nan")


def train_mlp(pre: Preprocessor, train: pd.DataFrame, val: pd.DataFrame, target: str,
              p: MLPParams, seed: int) -> Fitted:
    import torch

    device = choose_device(p.device, cuda_available=torch_cuda_ok())
    torch.manual_seed(seed)
    torch.set_num_threads(p.threads)
    gen = torch.Generator().manual_seed(seed)
    # Whole tensors live on the device; batches are index slices, no DataLoader copies.
    xn, xc = (torch.from_numpy(a).to(device) for a in pre.arrays(train))
    y = torch.from_numpy(train[target].to_numpy(np.float32)).to(device)
    vn, vc = (torch.from_numpy(a).to(device) for a in pre.arrays(val))
    yv = val[target].to_numpy()
    model = _mlp_class()(xn.shape[1], pre.cardinalities, p).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1)
    use_amp = device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best, best_state, best_epoch, history = -1.0, None, 0, {"train_loss": [], "val_auc": []}
    t0 = time.perf_counter()
    for epoch in range(p.max_epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen).to(device)
        total = 0.0
        for start in range(0, len(y), p.batch_size):
            idx = order[start:start + p.batch_size]
            if len(idx) < 2:  # BatchNorm needs two rows
                continue
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device, dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(model(xn[idx], xc[idx]), y[idx])
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            val_auc = _auc(yv, torch.sigmoid(model(vn, vc)).float().cpu().numpy())
        sched.step(val_auc)
        history["train_loss"].append(total / len(y))
        history["val_auc"].append(val_auc)
        if val_auc > best:
            best, best_epoch = val_auc, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= p.patience:
            break
    seconds = time.perf_counter() - t0
    model.load_state_dict(best_state)
    model = model.cpu().eval()
    log.info("mlp trained on %s: %d epochs (best %d, val auc %.4f) in %.1fs", device,
             len(history["val_auc"]), best_epoch, best, seconds)
    return Fitted("mlp", model, device, best_epoch, seconds, history)


# ---------------------------------------------------------------- scoring and shipping
def predict_proba(fitted_kind: str, model, pre: Preprocessor, df: pd.DataFrame,
                  best_iteration: int) -> np.ndarray:
    if fitted_kind == "xgboost":
        import xgboost as xgb

        dm = xgb.DMatrix(pre.frame(df), enable_categorical=True)
        return model.predict(dm, iteration_range=(0, best_iteration + 1))
    import torch

    xn, xc = (torch.from_numpy(a) for a in pre.arrays(df))
    with torch.no_grad():
        return torch.sigmoid(model(xn, xc)).numpy()


class DriftloopModel(mlflow.pyfunc.PythonModel):
    """Raw rows in, P(target = 1) out: preprocessing travels with the model."""

    def __init__(self, kind: str, model, pre: Preprocessor, best_iteration: int, features: list[str]):
        self.kind, self.model, self.pre = kind, model, pre
        self.best_iteration, self.features = best_iteration, features

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        if self.kind == "xgboost":  # the booster was trained with nthread; keep inference lean
            self.model.set_param({"device": "cpu"})
        return predict_proba(self.kind, self.model, self.pre, pd.DataFrame(model_input),
                             self.best_iteration).astype("float64")


def pip_requirements() -> list[str]:
    """Explicit requirements: inference by MLflow is slow and often wrong."""
    from importlib.metadata import version

    pkgs = ["mlflow", "pandas", "numpy", "scikit-learn", "xgboost", "torch", "cloudpickle"]
    return [f"{p}=={version(p).split('+')[0]}" for p in pkgs]
