#!/bin/sh
# One-shot: the work pools and the deployments of prefect.yaml on the Prefect server
# (PREFECT_API_URL), for workers whose project folder is DRIFTLOOP_ROOT. Safe to run again.
set -eu

cd "${DRIFTLOOP_ROOT:?DRIFTLOOP_ROOT must name the workers project folder, e.g. /workspace}"

# `local`: the pool prefect.yaml names (CPU worker); `gpu`: the GPU worker's (compose profile gpu).
prefect work-pool create local --type process --overwrite
prefect work-pool create gpu --type process --overwrite
prefect --no-prompt deploy --all

# TRAIN_POOL=gpu sends train/weekly (schedule and drift trigger kept) to the GPU worker's pool.
# `deploy --all` ignores --pool, so the one deployment is deployed again with it.
if [ "${TRAIN_POOL:-local}" != local ]; then
    prefect --no-prompt deploy --name weekly --pool "$TRAIN_POOL"
fi
