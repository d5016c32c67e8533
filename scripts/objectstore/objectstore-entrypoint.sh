#!/bin/sh
# Starts SeaweedFS's all-in-one server with its S3 gateway on :8333 (OBJECTSTORE_S3_PORT), data in /data
# (OBJECTSTORE_DIR), the bucket OBJECTSTORE_BUCKET created when absent. Refuses to start without credentials:
# an S3 gateway started without them would let anyone on the network read and write every object.
# Internal components talk over 127.0.0.1; every port listens on all interfaces of the container, and the
# compose file publishes none of them (reachable only on the compose network, like Redis and PostgreSQL).
set -eu
if [ -z "${AWS_ACCESS_KEY_ID:-}" ] || [ -z "${AWS_SECRET_ACCESS_KEY:-}" ]; then
  echo "objectstore: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the S3 credentials) in .env" >&2
  exit 1
fi
exec weed mini \
  -dir="${OBJECTSTORE_DIR:-/data}" \
  -ip=127.0.0.1 \
  -ip.bind=0.0.0.0 \
  -s3.port="${OBJECTSTORE_S3_PORT:-8333}" \
  -bucket="${OBJECTSTORE_BUCKET:-unlearn-blobs}" \
  -master.telemetry=false \
  -webdav=false \
  -admin.ui=false \
  -s3.port.iceberg=0 \
  -s3.port.lance=0 \
  "$@"
