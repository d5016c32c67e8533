#!/usr/bin/env bash
# Start the service on embedded defaults: migrations, then one worker and the API on 127.0.0.1:$PORT (default 8000).
# Uses the Redis at REDIS_URL; when nothing answers there, starts a redis-server child process.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"  # the project virtual environment (make install)

mkdir -p var
export DATABASE_URL="${DATABASE_URL:-sqlite:///./var/unlearn.db}"
export REDIS_URL="${REDIS_URL:-redis://localhost:6379/0}"
export UNLEARN_STORAGE_DIR="${UNLEARN_STORAGE_DIR:-./var/blobs}"
PORT="${PORT:-8000}"
# Development key for a local service; set your own outside development.
export UNLEARN_BOOTSTRAP_ADMIN_KEY="${UNLEARN_BOOTSTRAP_ADMIN_KEY:-dev-admin-key}"
# Development token for GET /metrics (curl -H "Authorization: Bearer dev-metrics-token" localhost:8000/metrics).
export UNLEARN_METRICS_TOKEN="${UNLEARN_METRICS_TOKEN:-dev-metrics-token}"
# Prometheus multi-process folder shared by the worker and the API; emptied here, before either starts.
if [ -z "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  export PROMETHEUS_MULTIPROC_DIR=./var/metrics
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
fi
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if ! $PY -c "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL'], socket_connect_timeout=1).ping()" 2>/dev/null; then
  if ! command -v redis-server >/dev/null; then
    echo "error: nothing answers at REDIS_URL=$REDIS_URL and redis-server is not installed." >&2
    echo "Install Redis (e.g. 'apt-get install redis-server') or point REDIS_URL at a running one." >&2
    exit 1
  fi
  port=$($PY -c "import os, urllib.parse as u; print(u.urlparse(os.environ['REDIS_URL']).port or 6379)")
  echo "run: starting redis-server on 127.0.0.1:$port (nothing answered at $REDIS_URL)"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir ./var >var/redis.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do
    $PY -c "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL']).ping()" 2>/dev/null && break
    sleep 0.1
  done
fi

echo "run: migrating $DATABASE_URL"
$PY -m app.core.migrate

echo "run: starting one worker"
$PY -m workers &
pids+=($!)

echo "run: API on http://127.0.0.1:$PORT, console at http://127.0.0.1:$PORT/console (admin key: \$UNLEARN_BOOTSTRAP_ADMIN_KEY)"
echo "run: for the unlearn command and scripts/demo.py: export UNLEARN_URL=http://127.0.0.1:$PORT"
$PY -m app.serve --host 127.0.0.1 --port "$PORT" &
pids+=($!)
wait -n "${pids[@]}"
