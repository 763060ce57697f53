#!/bin/sh
# Entrypoint of the driftloop images. Where DRIFTLOOP_ROOT is a workspace (the workers' volume),
# it first brings the image's project files into it and points the workspace's DVC at the
# bucket, then runs the command (a Prefect worker, the deploy one-shot, a server).
set -eu

SOURCE=/opt/driftloop

if [ -n "${DRIFTLOOP_ROOT:-}" ] && [ "$DRIFTLOOP_ROOT" != "$SOURCE" ]; then
    python "$SOURCE/docker/sync_workspace.py" "$SOURCE" "$DRIFTLOOP_ROOT"
    cd "$DRIFTLOOP_ROOT"
    # The image carries no .git: DVC runs without an SCM (dvc.lock stays in the workspace).
    dvc config --local core.no_scm true
    if [ -n "${DVC_REMOTE_URL:-}" ]; then
        # The DVC remote is the bucket (dvc-s3); keys come from AWS_ACCESS_KEY_ID and
        # AWS_SECRET_ACCESS_KEY in the environment, never from a file.
        dvc remote add --local --force --default bucket "$DVC_REMOTE_URL"
        if [ -n "${DVC_S3_ENDPOINT_URL:-}" ]; then
            dvc remote modify --local bucket endpointurl "$DVC_S3_ENDPOINT_URL"
        fi
    fi
fi

exec "$@"
