#!/usr/bin/env bash
# GPU check, run from the repository root on a machine with one CUDA device and no network (docs/benchmark.md,
# "Running the GPU check"): the engine tests on the device, deletion requests through the real worker code on
# the device, and the scaling and quality benchmarks on the device. Every step has a timeout and the whole
# script stays inside BUDGET_S seconds; a failed step does not stop the next one.
#
#   OUT=/some/folder bash scripts/gpu-check.sh                       # on the GPU machine
#   DEVICE=cpu OUT=/tmp/gpucheck-out PY=.venv/bin/python SKIP_WHEELS=1 BENCH_SIZES=5000,20000 \
#     bash scripts/gpu-check.sh                                      # dry run on a CPU machine
#
# Python packages the machine lacks travel as wheels in .whl/ (installed with pip --target into SITE, never
# committed); .whl/redis/ may hold a redis-server binary and its libraries. Outputs: OUT/env.txt, one OUT/NAME.log
# per step, OUT/bench/ (scaling and quality tables, JSON, plot), OUT/worker-service/ (process logs), OUT/summary.txt.
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1

OUT=${OUT:?set OUT to the output folder}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
BUDGET_S=${BUDGET_S:-380}                      # seconds for the whole script
BENCH_SIZES=${BENCH_SIZES:-10000,50000,200000} # scaling: training-set sizes
BENCH_SEEDS=${BENCH_SEEDS:-1}                  # quality tables: seeds 0..N-1
BENCH_THREADS=${BENCH_THREADS:-2}
REDIS_PORT=${REDIS_PORT:-6379}
SCRATCH=${SCRATCH:-/tmp/gpucheck}
mkdir -p "$OUT" "$SCRATCH"
OUT=$(cd "$OUT" && pwd)
[[ $PY == */* ]] && PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # steps run in other folders
START=$(date +%s)
SUMMARY=()
FAILED=0

left() { echo $((BUDGET_S - ($(date +%s) - START))); }

# step NAME CAP_S KEEP_S COMMAND...: run COMMAND under a timeout of CAP_S seconds, or less so that KEEP_S seconds
# of the budget stay for the steps after it; output goes to the terminal and to OUT/NAME.log.
step() {
  local name=$1 cap=$2 keep=$3
  shift 3
  local log="$OUT/$name.log" limit=$(($(left) - keep))
  ((limit > cap)) && limit=$cap
  if ((limit < 10)); then
    echo "+ [$name] skipped: ${limit}s of the budget left for it" | tee "$log"
    SUMMARY+=("$name: SKIPPED (budget)")
    FAILED=1
    return 0
  fi
  echo "+ [$name] $(date -u +%FT%TZ) timeout ${limit}s: $*" | tee "$log"
  local t0 rc
  t0=$(date +%s)
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  local took=$(($(date +%s) - t0)) verdict=ok
  ((rc == 124 || rc == 137)) && verdict="TIMED OUT (${limit}s)"
  ((rc != 0 && rc != 124 && rc != 137)) && verdict="FAILED (exit $rc)"
  [[ $verdict == ok ]] || FAILED=1
  echo "+ [$name] $verdict in ${took}s" | tee -a "$log"
  SUMMARY+=("$name: $verdict in ${took}s")
}

# 0. The machine.
{
  echo "date: $(date -u +%FT%TZ)  device setting: $DEVICE  budget: ${BUDGET_S}s"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "nproc: $(nproc)"
  free -g 2>/dev/null | head -2
  timeout 20 nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  timeout 60 "$PY" -c '
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda build", torch.version.cuda)
print("cuda available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device 0:", torch.cuda.get_device_name(0), f"{p.total_memory / 2**30:.1f} GiB", "capability", p.major, p.minor)
print("tf32: matmul", torch.backends.cuda.matmul.allow_tf32, "cudnn", torch.backends.cudnn.allow_tf32)
' 2>&1
} | tee "$OUT/env.txt"

# 1. The packages the machine lacks, from .whl/ (a dry run with a complete environment sets SKIP_WHEELS=1).
if [[ -z ${SKIP_WHEELS:-} ]]; then
  # shellcheck disable=SC2016 # expanded by the inner shell
  step wheels 90 170 bash -c '"$0" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$1" .whl/*.whl || { echo "pip failed: unpacking the wheels with zipfile instead"; "$0" -c "
import sys, zipfile
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])" "$1" .whl/*.whl; }' "$PY" "$SITE"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
step imports 60 170 "$PY" -c '
import alembic, cryptography, fastapi, multipart, pydantic, pydantic_settings, redis, rq, sqlalchemy, uvicorn
import app.main, workers.jobs.deletions, workers.jobs.train, bench.scaling
print("imports ok: fastapi", fastapi.__version__, "pydantic", pydantic.VERSION, "sqlalchemy", sqlalchemy.__version__)'

# Redis for the service check: one already answering, else .whl/redis/redis-server, else one on PATH.
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
REDIS_PID_FILE="$SCRATCH/redis.pid"
redis_up() { timeout 5 "$PY" -c "import redis; redis.Redis.from_url('$REDIS_URL', socket_connect_timeout=1).ping()" \
  >/dev/null 2>&1; }
stop_redis() { [[ -s $REDIS_PID_FILE ]] && kill "$(cat "$REDIS_PID_FILE")" 2>/dev/null; rm -f "$REDIS_PID_FILE"; }
trap stop_redis EXIT
if ! redis_up; then
  # a copy, so that a bundled binary that travelled without its execute bit still runs
  [[ -f .whl/redis/redis-server ]] && cp .whl/redis/redis-server "$SCRATCH/redis-server" &&
    chmod +x "$SCRATCH/redis-server"
  for server in "$SCRATCH/redis-server" "$(command -v redis-server || true)"; do
    [[ -n $server && -x $server ]] || continue
    echo "+ starting $server on port $REDIS_PORT" | tee -a "$OUT/redis.log"
    if LD_LIBRARY_PATH="$PWD/.whl/redis/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" timeout 10 "$server" \
      --daemonize yes --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$SCRATCH" \
      --pidfile "$REDIS_PID_FILE" --logfile "$OUT/redis-server.log" >>"$OUT/redis.log" 2>&1; then
      for _ in $(seq 40); do (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break; sleep 0.25; done
      redis_up && break
    fi
    stop_redis
  done
fi
if redis_up; then echo "redis: answering at $REDIS_URL" | tee -a "$OUT/redis.log"; else
  echo "redis: none (the service check is skipped; the direct job check runs)" | tee -a "$OUT/redis.log"; fi

# 2. The engine tests on the device.
step engine-tests 120 170 env UNLEARN_TEST_DEVICE="$DEVICE" "$PY" -m pytest -p no:cacheprovider -q \
  --basetemp="$SCRATCH/pytest" --durations=10 --junitxml="$OUT/engine-tests.xml" tests/workers/engine

# 3. Deletion requests through the real worker code on the device: the job functions in process, then (with
# Redis) the API under uvicorn and a `python -m workers --device` process.
rm -rf "$SCRATCH/direct" "$SCRATCH/service"
step worker-direct 90 170 "$PY" scripts/gpu_worker_check.py direct --device "$DEVICE" --workdir "$SCRATCH/direct" \
  --redis-url "$REDIS_URL"
if redis_up; then
  step worker-service 120 170 "$PY" scripts/gpu_worker_check.py service --device "$DEVICE" \
    --workdir "$SCRATCH/service" --redis-url "$REDIS_URL" --timeout 60
  mkdir -p "$OUT/worker-service" && cp "$SCRATCH"/service/*.log "$OUT/worker-service/" 2>/dev/null
else
  SUMMARY+=("worker-service: SKIPPED (no Redis)")
fi
stop_redis

# 4. The benchmark on the device, from a copy of bench/ and workers/ whose docs/bench is OUT/bench (the
# repository's docs/ stay untouched). Scaling first: 200k-row single-row deletion, cached vs exact vs retraining.
rm -rf "$SCRATCH/bench" && mkdir -p "$SCRATCH/bench/docs" "$OUT/bench"
cp -r bench workers "$SCRATCH/bench/" && ln -s "$OUT/bench" "$SCRATCH/bench/docs/bench"
step bench-scaling 170 10 bash -c "cd '$SCRATCH/bench' && exec '$PY' -m bench.scaling --device '$DEVICE' \
  --threads $BENCH_THREADS --sizes $BENCH_SIZES --full-retrain"
# --shadows 0: the membership attack's shadow models (24 more trainings) do not fit the step's time budget.
step bench-quality 170 10 bash -c "cd '$SCRATCH/bench' && exec '$PY' -m bench.quality --device '$DEVICE' \
  --threads $BENCH_THREADS --seeds $BENCH_SEEDS --shadows 0"

{
  echo "GPU check on device setting '$DEVICE': $(($(date +%s) - START))s of ${BUDGET_S}s"
  printf '  %s\n' "${SUMMARY[@]}"
} | tee "$OUT/summary.txt"
exit $FAILED
