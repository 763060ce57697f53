"""score flow: the @champion model's probabilities for a batch (default: the newest)."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from driftloop.config import Params
from driftloop.monitor import score as score_stage
from flows.common import project_params, resolve_batch


@task(name="score", cache_policy=NO_CACHE)
def score_batch(params: Params, batch: str | None) -> dict:
    return score_stage.run(params, resolve_batch(params, batch))


@flow(name="score", log_prints=True)
def score(batch: str | None = None) -> dict:
    return score_batch(project_params(), batch)


if __name__ == "__main__":
    score()
