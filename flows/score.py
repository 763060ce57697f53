"""score flow: the @champion model's probabilities for a batch (default: the newest)."""

from __future__ import annotations

from prefect import flow, task

from flows.common import project_params, resolve_batch
from pipelines import score as score_stage


@task(name="score")
def score_batch(batch: str | None) -> dict:
    params = project_params()
    return score_stage.run(params, resolve_batch(params, batch))


@flow(name="score", log_prints=True)
def score(batch: str | None = None) -> dict:
    return score_batch(batch)


if __name__ == "__main__":
    score()
