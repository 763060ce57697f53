#!/bin/sh
# One-shot: the bucket, and one key per client, each limited to its prefix: mlflow/ for the
# MLflow server (which serves artifacts to everyone else) and dvc/ for the workers' DVC remote.
# Safe to run again: existing bucket, policies and users are updated, not duplicated.
set -eu

work=$(mktemp -d)
export MC_CONFIG_DIR="$work/mc"
mc alias set store http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "store/$S3_BUCKET"

# grant POLICY PREFIX ACCESS_KEY SECRET_KEY
grant() {
    cat > "$work/$1.json" <<JSON
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
   "Resource": ["arn:aws:s3:::$S3_BUCKET"]},
  {"Effect": "Allow",
   "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
              "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
   "Resource": ["arn:aws:s3:::$S3_BUCKET/$2/*"]}]}
JSON
    mc admin policy create store "$1" "$work/$1.json"
    mc admin user add store "$3" "$4"
    case "$(mc admin user info store "$3")" in   # attaching twice is an error
        *"$1"*) ;;
        *) mc admin policy attach store "$1" --user "$3" ;;
    esac
}
grant driftloop-mlflow mlflow "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY"
grant driftloop-dvc dvc "$DVC_S3_ACCESS_KEY" "$DVC_S3_SECRET_KEY"
echo "bucket $S3_BUCKET ready: mlflow/ and dvc/ each with its own key"
