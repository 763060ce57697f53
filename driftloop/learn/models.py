"""The candidate learners (XGBoost, a PyTorch MLP) and the pyfunc that ships them.

Task-aware: binary (P(class 1)), multiclass (a probability per class) or regression.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from driftloop.config import MLPParams, XGBParams
from driftloop.learn.devices import choose_device, cuda_visible, torch_cuda_ok
from driftloop.learn.features import Preprocessor
from driftloop.metrics import metric_fn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """How the target column maps to what the learners see."""

    task: str
    column: str
    classes: list | None = None  # classification labels, index = code
    mean: float = 0.0  # regression scaling for the MLP
    std: float = 1.0

    @property
    def class_names(self) -> list[str] | None:
        """The classes as text, as reports store them and `encode_target` takes them."""
        return [str(c) for c in self.classes] if self.classes else None

    @classmethod
    def fit(cls, task: str, y: pd.Series) -> Target:
        if task == "regression":
            return cls(task, str(y.name), None, float(y.mean()), float(y.std() or 1.0))
        classes = sorted(pd.unique(y.dropna()).tolist())
        if task == "binary" and classes != [0, 1]:
            raise ValueError(f"binary target {y.name!r} must hold 0 and 1, found {classes[:10]}; "
                             "map it to 0/1 or set task: multiclass in params.yaml")
        return cls(task, str(y.name), classes)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "multiclass" else 1

    def encode(self, y: pd.Series) -> np.ndarray:
        if self.task == "regression":
            return y.to_numpy(np.float64)
        codes = pd.Categorical(y, categories=self.classes).codes
        if (codes < 0).any():
            bad = y[codes < 0].unique()[:5].tolist()
            raise ValueError(f"target {self.column!r} has labels {bad} not seen in training; "
                             "retrain with them or drop those rows")
        return codes.astype(np.int64)

    def weights(self, y_codes: np.ndarray, mode: str) -> np.ndarray:
        """Per-row weights: 'balanced' gives each class the same total weight."""
        if mode == "none" or self.task == "regression":
            return np.ones(len(y_codes))
        counts = np.bincount(y_codes, minlength=self.n_outputs).astype(float)
        w = len(y_codes) / (self.n_outputs * np.maximum(counts, 1.0))
        return w[y_codes]


# early stopping and model choice inside a learner: threshold-free, one per task
VAL_SCORE_METRIC = {"binary": "auc", "multiclass": "log_loss", "regression": "rmse"}


def val_score(target: Target, y: np.ndarray, pred: np.ndarray) -> float:
    """One higher-is-better number for early stopping and model choice."""
    metric = VAL_SCORE_METRIC[target.task]
    v = metric_fn(target.task, metric)(y, pred)
    return v if metric == "auc" else -v


@dataclass
class Fitted:
    kind: str
    model: object
    device: str
    best_iteration: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


# ---------------------------------------------------------------- XGBoost
def xgb_params(target: Target, p: XGBParams, device: str, seed: int) -> dict:
    objective = {"binary": ("binary:logistic", ["logloss", "auc"]),
                 "multiclass": ("multi:softprob", ["mlogloss"]),
                 "regression": ("reg:squarederror", ["rmse"])}[target.task]
    params = {
        "objective": objective[0], "eval_metric": objective[1], "tree_method": "hist",
        "device": device, "learning_rate": p.learning_rate, "max_depth": p.max_depth,
        "min_child_weight": p.min_child_weight, "subsample": p.subsample,
        "colsample_bytree": p.colsample_bytree, "nthread": p.n_jobs, "seed": seed,
        "max_cat_to_onehot": 1,
    }
    if target.task == "multiclass":
        params["num_class"] = target.n_outputs
    return params


def train_xgboost(pre: Preprocessor, train: pd.DataFrame, val: pd.DataFrame, target: Target,
                  p: XGBParams, seed: int, class_weight: str = "none", callbacks=None,
                  sample_weight: np.ndarray | None = None) -> Fitted:
    """`sample_weight` (e.g. recency) multiplies the class weights."""
    import xgboost as xgb

    device = choose_device(p.device, cuda_available=cuda_visible())
    y = target.encode(train[target.column])
    weight = xgb_weights(target, y, class_weight, sample_weight)
    dtrain = xgb.DMatrix(pre.frame(train), label=y, weight=weight, enable_categorical=True)
    dval = xgb.DMatrix(pre.frame(val), label=target.encode(val[target.column]),
                       enable_categorical=True)
    evals: dict = {}
    t0 = time.perf_counter()
    booster = xgb.train(xgb_params(target, p, device, seed), dtrain, num_boost_round=p.n_estimators,
                        evals=[(dval, "val")], early_stopping_rounds=p.early_stopping_rounds,
                        evals_result=evals, verbose_eval=False, callbacks=callbacks)
    return xgb_fitted(booster, evals["val"], p.device, time.perf_counter() - t0)


def xgb_weights(target: Target, y: np.ndarray, class_weight: str,
                sample_weight: np.ndarray | None) -> np.ndarray:
    """Row weights on every engine: class weights times `sample_weight` (e.g. recency)."""
    return target.weights(y, class_weight) * (1.0 if sample_weight is None else sample_weight)


def xgb_fitted(booster, val_history: dict[str, list], requested: str, seconds: float,
               engine: str = "local") -> Fitted:
    """The trained booster with the device its saved config says it ran on."""
    ran_on = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
    log.info("xgboost trained (%s) on device=%s (requested %s): %d rounds, best %d, %.1fs", engine,
             ran_on, requested, booster.num_boosted_rounds(), booster.best_iteration, seconds)
    return Fitted("xgboost", booster, ran_on, int(booster.best_iteration), seconds,
                  {f"val_{k}": [float(x) for x in v] for k, v in val_history.items()})


# ---------------------------------------------------------------- PyTorch MLP
def _mlp_class():
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        """Embeddings for categoricals, concatenated with numerics, then an MLP."""

        def __init__(self, n_num: int, cardinalities: list[int], n_out: int, p: MLPParams):
            super().__init__()
            self.embeddings = nn.ModuleList(
                nn.Embedding(n, min(p.embedding_dim, (n + 1) // 2 + 1)) for n in cardinalities)
            for emb in self.embeddings:  # near zero: what training never teaches stays quiet
                nn.init.normal_(emb.weight, std=p.embedding_init_std)
            width = n_num + sum(e.embedding_dim for e in self.embeddings)
            layers: list[nn.Module] = []
            for h in p.hidden:
                layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(p.dropout)]
                width = h
            layers.append(nn.Linear(width, n_out))
            self.net = nn.Sequential(*layers)

        def forward(self, x_num, x_cat):
            parts = [x_num] + [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
            out = self.net(torch.cat(parts, dim=1))
            return out.squeeze(1) if out.shape[1] == 1 else out

    return TabularMLP


def mlp_network(n_num: int, cardinalities: list[int], n_out: int, p: MLPParams):
    """A fresh, untrained network of the shape `train_mlp` trains (benchmarks build its floor)."""
    return _mlp_class()(n_num, cardinalities, n_out, p)


def _mlp_output(target: Target, raw):
    import torch

    if target.task == "binary":
        return torch.sigmoid(raw)
    if target.task == "multiclass":
        return torch.softmax(raw, dim=1)
    return raw * target.std + target.mean


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _deterministic(mode: bool) -> None:
    """torch.use_deterministic_algorithms(mode) without its import of torch._inductor (about
    2 s, there only to set the compiler's flag): nothing here compiles. The public call is used
    when the compiler is loaded already or torch lacks the switch."""
    import sys

    import torch

    switch = getattr(torch._C, "_set_deterministic_algorithms", None)
    if switch is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode)
    else:
        switch(mode, warn_only=False)


@contextmanager
def _torch_settings(threads: int, deterministic: bool):
    """Threads and determinism for one training, restored afterwards: they are process-wide
    and must not leak into whatever runs next (scoring, the other learner, a caller's loop)."""
    import torch
    import torch.utils.deterministic as tdet

    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             tdet.fill_uninitialized_memory)
    torch.set_num_threads(threads)
    if deterministic:
        _deterministic(True)
        # Deterministic mode also fills every new tensor with NaN (a debugging aid, not part
        # of reproducibility): ~200 fills per step, a tenth of a CPU step at this size.
        tdet.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        _deterministic(saved[1])
        tdet.fill_uninitialized_memory = saved[2]


def train_mlp(pre: Preprocessor, train: pd.DataFrame, val: pd.DataFrame, target: Target,
              p: MLPParams, seed: int, class_weight: str = "none",
              checkpoint: Path | None = None, sample_weight: np.ndarray | None = None) -> Fitted:
    """Train with AdamW, a plateau LR schedule, gradient clipping, AMP on CUDA and early
    stopping. With `checkpoint`, state is saved every epoch and a retried run resumes from it
    (only when the checkpoint was made with the same data, params and seed). Deterministic
    on the CPU for a seed."""
    device = choose_device(p.device, cuda_available=torch_cuda_ok())
    with _torch_settings(p.threads, deterministic=device == "cpu"):
        return _train_mlp(device, pre, train, val, target, p, seed, class_weight, checkpoint,
                          sample_weight)


def _train_mlp(device: str, pre: Preprocessor, train: pd.DataFrame, val: pd.DataFrame,
               target: Target, p: MLPParams, seed: int, class_weight: str,
               checkpoint: Path | None, sample_weight: np.ndarray | None) -> Fitted:
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # Whole tensors live on the device, built once; a batch is an index_select of a permuted
    # index (no DataLoader, no per-batch copies to the device, no per-batch host sync).
    xn, xc = (torch.from_numpy(a).to(device) for a in pre.arrays(train))
    y_np = target.encode(train[target.column])
    w_np = target.weights(y_np, class_weight) * (1.0 if sample_weight is None else sample_weight)
    w = torch.from_numpy(w_np.astype(np.float32)).to(device)
    if target.task == "regression":
        y = torch.from_numpy(((y_np - target.mean) / target.std).astype(np.float32)).to(device)
        loss_fn = torch.nn.MSELoss(reduction="none")
    elif target.task == "binary":
        y = torch.from_numpy(y_np.astype(np.float32)).to(device)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    else:
        y = torch.from_numpy(y_np).to(device)
        loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    vn, vc = (torch.from_numpy(a).to(device) for a in pre.arrays(val))
    yv = target.encode(val[target.column])
    model = mlp_network(xn.shape[1], pre.cardinalities, target.n_outputs, p).to(device)
    # fused: one kernel for all parameters instead of a dozen small ops per parameter
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=p.lr_factor,
                                                       patience=p.lr_patience)
    use_amp = device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    state = {"epoch": -1, "best": float("-inf"), "best_epoch": 0, "best_state": None,
             "history": {"train_loss": [], "val_score": []}}
    key = fingerprint(p.model_dump(), seed, class_weight, len(train), float(xn.sum()), target.task,
                      float(w_np.sum()))
    saved = load_checkpoint(checkpoint, key) if checkpoint is not None else None
    if saved is not None:
        try:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"])
            gen.set_state(saved["gen"])
            torch.set_rng_state(saved["rng"])  # dropout draws continue where they stopped
            state = saved["state"]
            epoch = int(state["epoch"])
        except Exception as exc:  # noqa: BLE001 - a damaged state: start again from scratch
            log.warning("mlp: checkpoint %s does not fit this model (%s); removing it and "
                        "training from scratch", checkpoint, exc)
            checkpoint.unlink(missing_ok=True)
            return _train_mlp(device, pre, train, val, target, p, seed, class_weight, checkpoint,
                              sample_weight)
        log.info("mlp: resuming from checkpoint %s after epoch %d", checkpoint, epoch)
    t0 = time.perf_counter()
    for epoch in range(state["epoch"] + 1, p.max_epochs):
        if epoch - state["best_epoch"] > p.patience:
            break
        model.train()
        order = torch.randperm(len(y), generator=gen).to(device)
        losses = []
        for start in range(0, len(y), p.batch_size):
            idx = order[start:start + p.batch_size]
            if len(idx) < 2:  # BatchNorm needs two rows
                continue
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device, dtype=torch.float16, enabled=use_amp):
                out = model(xn.index_select(0, idx), xc.index_select(0, idx)).float()
                loss = (loss_fn(out, y.index_select(0, idx)) * w.index_select(0, idx)).mean()
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
            scaler.step(opt)
            scaler.update()
            losses.append(loss.detach() * len(idx))  # summed once per epoch: no sync per batch
        model.eval()
        with torch.no_grad():
            pred = _mlp_output(target, model(vn, vc).float()).cpu().numpy()
        score = val_score(target, yv, pred)
        sched.step(score)
        score = float(score)  # plain floats: the checkpoint loads with weights_only=True
        total = float(torch.stack(losses).sum()) if losses else 0.0
        state["history"]["train_loss"].append(total / len(y))
        state["history"]["val_score"].append(score)
        if score > state["best"]:
            state.update(best=score, best_epoch=epoch,
                         best_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        state["epoch"] = epoch
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"key": key, "model": model.state_dict(),
                                         "opt": opt.state_dict(), "sched": sched.state_dict(),
                                         "gen": gen.get_state(), "rng": torch.get_rng_state(),
                                         "state": state})
    seconds = time.perf_counter() - t0
    model.load_state_dict(state["best_state"])
    model = model.cpu().eval()
    log.info("mlp trained on device=%s: %d epochs, best %d (val score %.4f), %.1fs", device,
             state["epoch"] + 1, state["best_epoch"], state["best"], seconds)
    return Fitted("mlp", model, device, state["best_epoch"], seconds, state["history"])


# ---------------------------------------------------------------- MLP checkpoints
CHECKPOINT_KEYS = ("key", "model", "opt", "sched", "gen", "rng", "state")


def save_checkpoint(path: Path, payload: dict) -> None:
    """Tensors and plain types only (so it loads with weights_only=True), written atomically
    (io's unique temp name in the same folder, then a rename): a kill never leaves half a file."""
    import torch

    from driftloop.io import write_file

    write_file(path, lambda tmp: torch.save(payload, tmp))


def stale_checkpoint_temps(path: Path) -> list[Path]:
    """Temp files a killed `save_checkpoint` left next to `path`."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def load_checkpoint(path: Path, key: str) -> dict | None:
    """The saved training state to resume from, or None to train from scratch: no checkpoint,
    one made with other data, params or seed, or one that cannot be read (truncated, an old
    pickled format): each is logged, and an unreadable file is removed."""
    import torch

    for tmp in stale_checkpoint_temps(path):
        log.warning("mlp: removing %s, a checkpoint write that never finished", tmp)
        tmp.unlink(missing_ok=True)
    if not path.exists():
        return None
    try:  # on the CPU: the RNG states must be CPU tensors; weights move to the model's device
        saved = torch.load(path, map_location="cpu", weights_only=True)
        missing = [k for k in CHECKPOINT_KEYS if k not in saved] if isinstance(saved, dict) \
            else list(CHECKPOINT_KEYS)
        if missing:
            raise ValueError(f"no {', '.join(missing)} in it")
    except Exception as exc:  # noqa: BLE001 - whatever makes it unreadable, start afresh
        why = (str(exc).strip().splitlines() or [""])[0][:200]
        log.warning("mlp: checkpoint %s is unreadable (%s: %s); removing it and training from "
                    "scratch", path, type(exc).__name__, why)
        path.unlink(missing_ok=True)
        return None
    if saved["key"] != key:
        log.info("mlp: checkpoint %s was made with other data, params or seed; training from "
                 "scratch", path)
        return None
    return saved


# ---------------------------------------------------------------- scoring and shipping
def predict(kind: str, model, pre: Preprocessor, target: Target, df: pd.DataFrame,
            best_iteration: int) -> np.ndarray:
    """P(class 1) (binary), an (n, k) probability matrix (multiclass) or values (regression)."""
    if kind == "xgboost":
        import xgboost as xgb

        dm = xgb.DMatrix(pre.frame(df), enable_categorical=True)
        return model.predict(dm, iteration_range=(0, best_iteration + 1))
    import torch

    xn, xc = (torch.from_numpy(a) for a in pre.arrays(df))
    with torch.no_grad():
        return _mlp_output(target, model(xn, xc)).numpy()


class DriftloopModel(mlflow.pyfunc.PythonModel):
    """Raw rows in, probabilities (or values, for regression) out: preprocessing travels with it."""

    def __init__(self, kind: str, model, pre: Preprocessor, target: Target, best_iteration: int,
                 threshold: float | None = None):
        self.kind, self.model, self.pre, self.target = kind, model, pre, target
        self.best_iteration, self.threshold = best_iteration, threshold
        self.requirements = pip_requirements()  # what it was saved with: tracking.load_model

    def predict(self, context, model_input: pd.DataFrame, params=None):
        if self.kind == "xgboost":  # score on CPU wherever it was trained
            self.model.set_param({"device": "cpu"})
        out = predict(self.kind, self.model, self.pre, self.target, pd.DataFrame(model_input),
                      self.best_iteration)
        if self.target.task == "multiclass":
            return pd.DataFrame(out, columns=self.target.class_names)
        return np.asarray(out, dtype="float64")


def as_matrix(pred) -> np.ndarray:
    """pyfunc output as a numpy array (multiclass DataFrames keep their class order)."""
    return pred.to_numpy(np.float64) if isinstance(pred, pd.DataFrame) else np.asarray(pred, np.float64)


def pip_requirements() -> list[str]:
    """Explicit requirements: inference by MLflow is slow and often wrong."""
    from driftloop.tracking import installed_version

    pkgs = ["mlflow", "pandas", "numpy", "scikit-learn", "xgboost", "torch", "cloudpickle"]
    return [f"{p}=={installed_version(p)}" for p in pkgs]
