# Images for the unlearning service. Build targets:
#   api         FastAPI on uvicorn, CPU-only torch (the API validates checkpoints against the model zoo)
#   migrate     one-shot schema migration (`alembic upgrade head`), same image as api
#   worker      RQ worker with CUDA-enabled torch (one process per GPU)
#   worker-cpu  RQ worker with CPU-only torch
# Dependencies are read from pyproject.toml and the project is installed with `pip install .`; the client package
# (clients/python: the audit verifier the service signs its log with) is installed first, from the same context.
#   docker build --target api -t unlearn-api .
#   docker build --target worker -t unlearn-worker .
# Build arguments (defaults: the public images and indexes):
#   PYTHON_IMAGE         base image with Python (a `python` command and the venv module) and Debian's tools
#   TORCH_CPU_INDEX_URL  index of the CPU-only torch build; empty: pip's default index
# Optional inputs for hosts without access to every index (none is baked into an image):
#   wheels/              local wheels for the CPU stages, preferred to any index (the CPU torch wheel)
#   secret ca_bundle     a CA bundle pip trusts, for HTTPS through a TLS-inspecting proxy
#                        (docker build --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt)

# Must satisfy requires-python in pyproject.toml.
ARG PYTHON_VERSION=3.11
ARG PYTHON_IMAGE=python:${PYTHON_VERSION}-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    UNLEARN_STORAGE_DIR=/var/lib/unlearn/blobs \
    UNLEARN_AUDIT_KEY_PATH=/var/lib/unlearn/keys/audit-signing-key.pem \
    UNLEARN_ID_KEY_PATH=/var/lib/unlearn/keys/id-hash-key
# A fixed uid/gid so a shared blob volume has the same owner on every host.
RUN groupadd --system --gid 10001 unlearn \
 && useradd --system --uid 10001 --gid unlearn --home-dir /srv/unlearn --shell /usr/sbin/nologin unlearn \
 && mkdir -p /srv/unlearn/var /var/lib/unlearn/blobs /var/lib/unlearn/keys \
 && chown -R unlearn:unlearn /srv/unlearn /var/lib/unlearn
WORKDIR /srv/unlearn

# Virtual environment with the project's runtime dependencies, split out of pyproject.toml so this layer
# is rebuilt only when pyproject.toml changes (README.md, the package's long description, comes later): /tmp/torch.txt holds the torch pin, /tmp/requirements.txt all of them.
FROM base AS build
RUN python -m venv /opt/venv
COPY pyproject.toml ./
COPY clients/python ./clients/python
RUN python -c "import re, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
open('/tmp/torch.txt', 'w').write('\n'.join(d for d in deps if re.split(r'[<>=!~;\[ ]', d)[0] == 'torch') + '\n'); \
open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')"

# CPU-only torch from the PyTorch CPU index (no CUDA libraries) or from wheels/, then the rest from PyPI.
# A local wheel wins over the index: `2.13.0+cpu` sorts above PyPI's CUDA `2.13.0`, and pip takes the local file
# when an index offers the same version. The CA bundle, when given, is read from the secret mount only.
FROM build AS venv-cpu
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN --mount=type=bind,source=wheels,target=/tmp/wheels \
    --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && pip install --find-links /tmp/wheels ${TORCH_CPU_INDEX_URL:+--index-url "${TORCH_CPU_INDEX_URL}"} -r /tmp/torch.txt \
 && pip install ./clients/python \
 && pip install --find-links /tmp/wheels -r /tmp/requirements.txt
COPY README.md ./
COPY app ./app
COPY workers ./workers
COPY unlearn_contract ./unlearn_contract
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && pip install --no-deps . && python -c "import torch; assert not torch.version.cuda, torch.version.cuda"

# CUDA-enabled torch: the default PyPI wheel for linux/x86_64 ships the CUDA runtime; the host provides the driver.
# (No wheels/ here: its CPU torch would win over the CUDA build.)
FROM build AS venv-cuda
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && pip install ./clients/python \
 && pip install -r /tmp/requirements.txt
COPY README.md ./
COPY app ./app
COPY workers ./workers
COPY unlearn_contract ./unlearn_contract
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && pip install --no-deps .

# Shared by api, migrate and worker-cpu: CPU torch, the migration scripts, the non-root user.
FROM base AS runtime-cpu
COPY --from=venv-cpu /opt/venv /opt/venv
COPY alembic.ini ./
COPY migrations ./migrations
USER 10001:10001

FROM runtime-cpu AS migrate
HEALTHCHECK NONE
CMD ["alembic", "upgrade", "head"]

FROM runtime-cpu AS worker-cpu
ENV UNLEARN_DEVICE=cpu
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, redis; redis.Redis.from_url(os.environ.get('REDIS_URL', 'redis://localhost:6379/0'), socket_connect_timeout=3, socket_timeout=3).ping()"]
CMD ["sh", "-c", "exec python -m workers --device \"${UNLEARN_DEVICE:-auto}\""]

FROM base AS worker
COPY --from=venv-cuda /opt/venv /opt/venv
# Read by the NVIDIA container runtime: expose the GPUs the container was given and the compute libraries.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    UNLEARN_DEVICE=auto
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, redis; redis.Redis.from_url(os.environ.get('REDIS_URL', 'redis://localhost:6379/0'), socket_connect_timeout=3, socket_timeout=3).ping()"]
CMD ["sh", "-c", "exec python -m workers --device \"${UNLEARN_DEVICE:-auto}\""]

# Last, so a plain `docker build .` gives the API image.
FROM runtime-cpu AS api
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["python", "-m", "app.serve", "--host", "0.0.0.0", "--port", "8000"]
