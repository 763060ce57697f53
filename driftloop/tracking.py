"""MLflow plumbing: one experiment per project, batched metric logging, and the registry's
@champion alias (lookup and rollback)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence

from driftloop.config import Params
from driftloop.lock import champion_lock
from driftloop.retry import require

log = logging.getLogger(__name__)
CHAMPION = "champion"  # the registry alias of the serving model


# what opening a local (SQLite) store imports: SQLAlchemy, Alembic and MLflow's SQL stores,
# 0.7 s; the stages that open one name these in their LAZY_IMPORTS
STORE_IMPORTS = ("mlflow.store.tracking.sqlalchemy_store",
                 "mlflow.store.model_registry.sqlalchemy_store")


def setup(params: Params) -> str:
    """Point MLflow at the project's store; create the experiment with an absolute artifact root."""
    import mlflow

    uri = params.tracking_uri
    if uri.startswith(("http://", "https://")):
        require_server(params, uri)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    # set_tracking_uri also exports MLFLOW_TRACKING_URI; undo that, or the next project loaded
    # in this process would take this one's store for a user override.
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    exp = mlflow.get_experiment_by_name(params.project.name)
    if exp is None:  # a tracking server picks its own artifact store; a local store uses ours
        remote = uri.startswith(("http://", "https://"))
        exp_id = mlflow.create_experiment(
            params.project.name, artifact_location=None if remote else params.artifact_uri)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def warm_requirement_check() -> None:
    """Build MLflow's map of installed packages now. Saving or logging a model checks its pip
    requirements against that map, and building it scans every installed distribution (about
    1 s, once per process): the train stage builds it on a thread while it reads its splits."""
    try:
        from mlflow.utils.requirements_utils import _init_modules_to_packages_map
    except ImportError:  # a later MLflow: it then builds whatever it needs when it saves
        return
    _init_modules_to_packages_map()


def require_server(params: Params, uri: str) -> None:
    """A tracking server that does not answer fails here, before anything is written to it,
    with its URL and what to do; MLflow's own retries of later calls are kept as short as ours
    (`services:` in params.yaml) unless MLFLOW_HTTP_REQUEST_* say otherwise."""
    sp = params.services
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(sp.retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", str(max(1, round(sp.backoff_s))))
    require(f"{uri.rstrip('/')}/health", sp, service="the MLflow tracking server",
            todo="start it (`make demo` starts one) or point mlflow.tracking_uri in params.yaml "
                 "(or MLFLOW_TRACKING_URI) at a running server, then run again; nothing was "
                 "written to the registry")


def champion(params: Params):
    """The project's @champion model version (MLflow set up first), or a clear error when
    there is none yet. Load its model by this version, not by the alias, which can move."""
    from mlflow import MlflowClient

    setup(params)
    champ = current_champion(MlflowClient(), params.project.name)
    if champ is None:
        raise RuntimeError(f"no @{CHAMPION} model for {params.project.name!r} yet: run the train "
                           "flow (prefect deployment run train/weekly) or `dvc repro` first")
    return champ


def load_model(uri: str):
    """mlflow.pyfunc.load_model(uri), with the package versions the model was saved with
    checked against this environment: a warning names each that differs (its scores may
    differ too; install from the lock, or retrain). MLflow's own check maps every installed
    distribution to its modules first, about 1.2 s per load, so it is skipped; a model saved
    before driftloop recorded its versions gets MLflow's."""
    import mlflow

    model = mlflow.pyfunc.load_model(uri, suppress_warnings=True)
    try:
        saved_with = getattr(model.unwrap_python_model(), "requirements", None)
    except mlflow.exceptions.MlflowException:  # not a python_model pyfunc
        saved_with = None
    if saved_with is None:
        return mlflow.pyfunc.load_model(uri)
    if differ := version_mismatches(saved_with):
        log.warning("%s was saved with %s; this environment has %s: its predictions may differ. "
                    "Install the project from its lock file, or retrain.", uri,
                    ", ".join(w for w, _ in differ), ", ".join(h for _, h in differ))
    return model


def installed_version(name: str) -> str | None:
    """The installed version of a package without its local part (torch 2.13.0+cpu is 2.13.0),
    as a model's pins name it; None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name).split("+")[0]
    except PackageNotFoundError:
        return None


def version_mismatches(pins: Sequence[str]) -> list[tuple[str, str]]:
    """(pin, what is installed) for each `name==version` pin this environment does not meet."""
    out = []
    for pin in pins:
        name, _, wanted = pin.partition("==")
        have = installed_version(name)
        if have != wanted:
            out.append((pin, f"{name} {have or 'not installed'}"))
    return out


def require_run(run_id: str, source: str) -> None:
    """Fail clearly when a report names an MLflow run the tracking store does not have."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient().get_run(run_id)
    except MlflowException:
        raise RuntimeError(
            f"{source}: MLflow run {run_id} is not in the tracking store "
            f"{mlflow.get_tracking_uri()} (was the store reset, or were these outputs restored "
            "from DVC's run cache?); train again with `dvc repro --no-run-cache`, or run the "
            "train/weekly flow, which never reuses cached training runs") from None


def log_metrics(run_id: str, values: Mapping[str, float],
                series: Mapping[str, Sequence[float]] | None = None) -> None:
    """All metrics in one call (per-metric calls cost a round trip each)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in values.items() if v == v]
    for name, seq in (series or {}).items():
        metrics += [Metric(name, float(v), now, i) for i, v in enumerate(seq) if v == v]
    client = MlflowClient()
    for i in range(0, len(metrics), 1000):  # the REST API caps a batch at 1000 metrics
        client.log_batch(run_id, metrics=metrics[i:i + 1000])


def current_champion(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def register_version(client, name: str, model_uri: str, run_id: str, tags: dict[str, str]):
    """The model version of training run `run_id`, registered with all its evidence tags in
    one request (a version never exists without them). A version of that run left
    "promoting" by a run cut off before the alias move (and not @champion) is taken up
    again instead of adding another."""
    import mlflow

    champ = current_champion(client, name)
    left = [v for v in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
            if v.tags.get("decision") == "promoting"
            and (champ is None or str(v.version) != str(champ.version))]
    if left:
        mv = max(left, key=lambda v: int(v.version))
        log.info("%s v%s holds run %s from a cut-off register: taking it up", name, mv.version,
                 run_id)
        for k, v in tags.items():
            client.set_model_version_tag(name, mv.version, k, v)
        return mv
    return mlflow.register_model(model_uri, name, tags=tags)


def rollback(params: Params, reason: str) -> dict:
    """Move @champion back to the version it replaced, and record why on both versions."""
    from mlflow import MlflowClient

    if not reason.strip():
        raise ValueError("a rollback needs a reason (--reason \"...\"): it is recorded on the model")
    setup(params)
    client, name = MlflowClient(), params.project.name
    with champion_lock(params, f"rollback of {name}"):
        return _rollback(client, name, reason)


def _rollback(client, name: str, reason: str) -> dict:
    champ = current_champion(client, name)
    if champ is None:
        raise RuntimeError(f"{name!r} has no @{CHAMPION}: nothing to roll back")
    previous = champ.tags.get("previous_champion", "")
    if not previous:
        raise RuntimeError(f"{name} v{champ.version} replaced no earlier champion: nothing to roll "
                           "back to; promote a version by hand with the MLflow client if needed")
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, champ.version, "rolled_back", reason)
    client.set_model_version_tag(name, previous, "restored_by_rollback",
                                 f"from v{champ.version}: {reason}")
    record_move(client, name, kind="rollback", from_version=champ.version, to_version=previous,
                reason=reason, trigger="manual")
    client.update_model_version(name, champ.version,
                                description=one_line(f"rolled back to v{previous}: {reason}"))
    log.info("rolled back %s: @%s v%s -> v%s (%s)", name, CHAMPION, champ.version, previous, reason)
    return {"model": name, "from": int(champ.version), "to": int(previous), "reason": reason}


def ui_link(params: Params, run_id: str, artifact: str = "") -> str:
    """The MLflow UI's page of a run (or of one of its artifacts): an http link a browser
    opens from the Prefect UI, unlike a file:// path."""
    from mlflow import MlflowClient

    experiment = MlflowClient().get_run(run_id).info.experiment_id
    tail = f"/artifacts/{artifact}" if artifact else ""
    return f"{params.mlflow.ui_url.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}{tail}"


HISTORY_TAG = "champion_move."  # registered-model tags, one per move of @champion, in order
_TAG_VALUE_MAX = 4000            # below MLflow's limit on a tag value


def one_line(text: str, limit: int = 500) -> str:
    """A registry description or history reason: one line, bounded."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def record_move(client, name: str, *, kind: str, from_version, to_version, reason: str,
                trigger: str, at: str | None = None) -> dict:
    """Append a move of @champion (promotion, rollback, manual) to the history kept in the
    registry itself, so it survives a restart and travels with the store. Called under the
    champion lock, so two moves never take the same number."""
    from datetime import UTC, datetime

    model = client.get_registered_model(name)
    n = sum(k.startswith(HISTORY_TAG) for k in (model.tags or {})) + 1
    entry = {"at": at or datetime.now(UTC).isoformat(timespec="seconds"), "kind": kind,
             "from": str(from_version) if from_version else None, "to": str(to_version),
             "reason": one_line(reason, 1500), "trigger": trigger,
             "evidence": f"models:/{name}/{to_version}"}
    value = json.dumps(entry)[:_TAG_VALUE_MAX]
    client.set_registered_model_tag(name, f"{HISTORY_TAG}{n:06d}", value)
    return entry


def champion_history(client, name: str) -> list[dict]:
    """Every recorded move of @champion, oldest first (an unreadable entry is shown as such)."""
    model = client.get_registered_model(name)
    out = []
    for key in sorted(k for k in (model.tags or {}) if k.startswith(HISTORY_TAG)):
        try:
            out.append(json.loads(model.tags[key]))
        except ValueError:
            out.append({"kind": "unreadable", "reason": f"registry tag {key} is damaged"})
    return out
