"""params.yaml, read once per process into a typed, frozen object."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProjectParams(_Frozen):
    name: str


class PathParams(_Frozen):
    landing: Path
    raw: Path
    window: Path
    validated: Path
    splits: Path
    model: Path
    reports: Path
    predictions: Path
    quarantine: Path
    suite: Path
    checkpoint: Path
    labels: Path
    policy_state: Path
    decisions: Path
    monitoring_page: Path
    trigger: Path
    mlflow_artifacts: Path
    locks: Path                 # lock files: one training run at a time, moves of @champion
    validate_cache: Path        # verdicts of batches already checked (validate.cache); never DVC-tracked


class DataParams(_Frozen):
    target: str
    id: str
    time: str
    categorical: list[str]
    numerical: list[str]

    @property
    def features(self) -> list[str]:
        return [*self.numerical, *self.categorical]


class SimulateParams(_Frozen):
    seed: int
    rows_per_week: int = Field(gt=0)
    start: str
    weeks: int = Field(gt=0)
    drift_from_week: int | None
    drift_ramp_weeks: int = Field(gt=0)     # concept drift reaches full strength over this many weeks
    label_delay_days: float = Field(ge=0)   # a week's labels arrive this long after it ends
    incoming: Path                          # where the demo's unlabelled weekly batches arrive


class IngestParams(_Frozen):
    window_weeks: int = Field(gt=0)


class LeakageParams(_Frozen):
    max_auc: float = Field(gt=0.5, le=1)   # a feature alone above this AUC is flagged
    severity: Literal["error", "warn"]
    sample_rows: int = Field(gt=0)       # rows sampled to compute the AUCs
    seed: int


class ValidateParams(_Frozen):
    fail_on: Literal["error", "warn"]
    max_age_days: int = Field(gt=0)        # events older than this break the contract
    clock_skew_minutes: int = Field(ge=0)     # events up to this far in the future are tolerated
    leakage: LeakageParams
    workers: int = Field(ge=0)                # processes checking batches; 0: one per core
    cache: bool                               # skip batches that already passed this contract


class SplitParams(_Frozen):
    method: Literal["stratified", "time"]
    seed: int
    val_size: float = Field(gt=0, lt=1)
    test_size: float = Field(gt=0, lt=1)


class XGBParams(_Frozen):
    device: Literal["auto", "cpu", "cuda"]
    n_estimators: int
    learning_rate: float
    max_depth: int
    min_child_weight: float
    subsample: float
    colsample_bytree: float
    early_stopping_rounds: int
    n_jobs: int


class MLPParams(_Frozen):
    device: Literal["auto", "cpu", "cuda"]
    hidden: list[int]
    embedding_dim: int
    embedding_init_std: float = Field(gt=0)
    dropout: float
    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    lr_factor: float = Field(gt=0, lt=1)
    lr_patience: int = Field(ge=0)
    threads: int


class SearchRange(_Frozen):
    low: int | float
    high: int | float
    log: bool

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"a search range needs low < high (and low > 0 on a log scale); "
                             f"got {self.low}..{self.high} log={self.log}")
        return self


class TuningParams(_Frozen):
    enabled: bool
    warmup_rounds: int = Field(ge=0)
    space: dict[str, SearchRange]
    n_trials: int = Field(gt=0)
    timeout_s: float = Field(gt=0)
    seed: int


class DaskParams(_Frozen):
    """Where `train.engine: dask` trains XGBoost (driftloop/learn/dask_engine.py)."""
    address: str                               # scheduler address; "": a LocalCluster sized below
    workers: int = Field(gt=0)                 # LocalCluster worker processes (1: one in-process worker)
    threads_per_worker: int = Field(gt=0)
    memory_limit: str                          # per worker: "auto", "4GiB", "0" (no limit)
    connect_timeout_s: float = Field(gt=0)     # scheduler and workers must answer within this


class TrainParams(_Frozen):
    seed: int
    candidates: list[Literal["xgboost", "mlp"]]
    class_weight: Literal["none", "balanced"]
    recency_half_life_days: float | None = Field(gt=0)
    parallel_candidates: bool = False          # see driftloop.learn.fit.candidate_threads
    engine: Literal["local", "dask"]           # where XGBoost trains; the MLP always trains locally
    dask: DaskParams
    xgboost: XGBParams
    mlp: MLPParams
    tuning: TuningParams


class EvaluateParams(_Frozen):
    threshold: float | Literal["best_f1_on_val"]
    slices: list[str]
    slice_min_rows: int = Field(gt=0)
    calibration_bins: int = Field(gt=1)


class RegisterParams(_Frozen):
    metric: str
    thresholds: dict[str, float]
    margin: float
    bootstrap_samples: int = Field(ge=50)
    confidence: float = Field(gt=0.5, lt=1)
    seed: int
    slice_tolerance: float = Field(ge=0)
    identical_atol: float = Field(ge=0)


class DriftParams(_Frozen):
    drift_share: float = Field(gt=0, le=1)
    min_rows: int = Field(gt=0)
    reference_rows: int = Field(gt=0)
    seed: int
    max_rows: int = Field(gt=0)
    num_method: Literal["wasserstein", "psi", "jensenshannon"]
    cat_method: Literal["jensenshannon", "psi"]
    discrete_method: Literal["psi", "jensenshannon", "wasserstein"]
    discrete_values: int = Field(ge=0)
    threshold: float = Field(gt=0)
    noise_rounds: int = Field(ge=0)
    noise_quantile: float = Field(gt=0, le=1)
    correction: Literal["binomial", "holm", "bh"]  # dataset rule over many features (monitor/multitest.py)
    family_alpha: float = Field(gt=0, lt=1)        # false-alarm chance per check that rule aims at
    missing_increase: float = Field(gt=0, le=1)
    prediction_threshold: float = Field(gt=0)
    min_labels: int = Field(gt=0)


class EstimateParams(_Frozen):
    """Performance estimated before labels arrive (binary tasks): driftloop.monitor.estimate."""
    bins: int = Field(gt=1)
    min_rows: int = Field(gt=0)
    rounds: int = Field(gt=0)
    confidence: float = Field(gt=0, lt=1)
    seed: int


class PolicyParams(_Frozen):
    consecutive_drift: int = Field(gt=0)
    performance_metric: Literal["auc", "f1", "precision", "recall", "macro_f1", "accuracy",
                                "rmse", "mae", "mape", "r2"]
    performance_drop: float = Field(gt=0)
    cooldown_hours: float = Field(ge=0)
    max_per_week: int = Field(ge=0)
    min_drift_labels: int = Field(ge=0)     # labelled rows of the drifted batches a drift retrain waits for
    triggers: list[Literal["drift", "performance", "estimated"]] = Field(min_length=1)  # rules that may ask
    estimated_drop: float | None = Field(default=..., gt=0)  # estimated-metric drop that may ask (None: off)


class AlertParams(_Frozen):
    urls: list[str]
    on: list[Literal["retrain", "drift", "cooldown", "capped", "performance"]]
    timeout: float = Field(gt=0)


class MlflowParams(_Frozen):
    tracking_uri: str
    ui_url: str       # where people open the MLflow UI: links in Prefect artifacts point there


class ConcurrencyParams(_Frozen):
    train_wait_s: float = Field(ge=0)    # a training run waits this long for the one running
    dvc_lock_retries: int = Field(ge=0)  # a stage retries this often while another dvc holds the repo


class ServiceParams(_Frozen):
    retries: int = Field(ge=0)           # extra attempts at Prefect / MLflow after a transient error
    backoff_s: float = Field(ge=0)       # wait before the first retry; doubles for each next one
    timeout_s: float = Field(gt=0)       # seconds per health probe


class TimeoutParams(_Frozen):
    stage_s: float = Field(gt=0)         # one `dvc repro` stage run by the train flow
    dvc_s: float = Field(gt=0)           # one `dvc checkout` / `dvc push` of the train flow
    flow_run_s: float = Field(gt=0)      # the demo's wait for one deployment run to finish


class Params(_Frozen):
    root: Path
    project: ProjectParams
    task: Literal["binary", "multiclass", "regression"]
    paths: PathParams
    data: DataParams
    simulate: SimulateParams
    ingest: IngestParams
    validate_: ValidateParams = Field(alias="validate")
    split: SplitParams
    train: TrainParams
    evaluate: EvaluateParams
    register_: RegisterParams = Field(alias="register")
    drift: DriftParams
    estimate: EstimateParams
    policy: PolicyParams
    alerts: AlertParams
    mlflow: MlflowParams
    concurrency: ConcurrencyParams
    services: ServiceParams
    timeouts: TimeoutParams

    @model_validator(mode="after")
    def _metrics_fit_the_task(self) -> Params:
        from driftloop.metrics import TASK_METRICS

        allowed = TASK_METRICS[self.task]
        wrong = [m for m in [self.register_.metric, *self.register_.thresholds] if m not in allowed]
        if wrong:
            raise ValueError(f"register.metric / register.thresholds name {wrong}, which do not "
                             f"apply to task {self.task!r}; use {list(allowed)}")
        return self

    def path(self, name: str) -> Path:
        """Absolute path of `paths.<name>`."""
        return self.root / getattr(self.paths, name)

    def report_dir(self, stage: str) -> Path:
        return self.root / self.paths.reports / stage

    @property
    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI wins; a relative sqlite URI is made absolute against the root."""
        uri = os.environ.get("MLFLOW_TRACKING_URI") or self.mlflow.tracking_uri
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
            uri = prefix + str(self.root / uri[len(prefix):])
        return uri

    @property
    def artifact_uri(self) -> str:
        return self.path("mlflow_artifacts").as_uri()


class ParamsError(ValueError):
    pass


def find_params(start: Path | None = None) -> Path:
    """params.yaml in DRIFTLOOP_PARAMS, or the nearest one from `start` (default: cwd) upwards."""
    if env := os.environ.get("DRIFTLOOP_PARAMS"):
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file():
            return folder / "params.yaml"
    raise ParamsError(
        f"no params.yaml in {here} or any parent: run from the project folder "
        "or set DRIFTLOOP_PARAMS=/path/to/params.yaml"
    )


def load_params(path: Path | str | None = None) -> Params:
    path = Path(path) if path else find_params()
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found; pass the project's params.yaml") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc}); fix the syntax") from None
    try:
        return Params.model_validate({**raw, "root": path.resolve().parent})
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        ]
        raise ParamsError(f"{path}: invalid parameters; fix these keys:\n" + "\n".join(lines)) from None


def params_hash(params: Params) -> str:
    """Stable hash of every knob (root excluded), recorded with each model version."""
    body = params.model_dump(mode="json", by_alias=True, exclude={"root"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
