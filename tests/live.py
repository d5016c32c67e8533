"""The running service for the CLI and browser tests: a uvicorn process and a worker process on the real
PostgreSQL and Redis. Their conftest modules import `service` and `service_db_url` from here.

`service` (module scope) starts `uvicorn app.main:create_app --factory` on a free port and `python -m workers
--device cpu`, both on a fresh migrated PostgreSQL database, the real Redis with a queue of their own (so no other
test's jobs are picked up), and one blob folder and audit key shared by the two processes, as in a deployment.
It yields the URL and the raw key of a tenant admin created for these tests; the processes' log tails are printed
at teardown (shown by pytest when a test failed).
"""

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.pgdb import fresh_database

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0  # for the API to answer /readyz
STOP_TIMEOUT_S = 15.0  # after SIGTERM, before SIGKILL
LOG_TAIL_BYTES = 6000
METRICS_TOKEN = "metrics-token-of-the-cli-tests"  # what /metrics of the service below asks for


@dataclass
class Service:
    url: str
    api_key: str  # admin of a fresh tenant
    workdir: Path
    env: dict[str, str]  # the environment the CLI runs with (UNLEARN_URL, UNLEARN_API_KEY, PYTHONPATH)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path) -> str:
    if not path.exists():
        return "(no log)"
    data = path.read_bytes()
    return data[-LOG_TAIL_BYTES:].decode("utf-8", "replace")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _write_signing_key(path: Path) -> None:
    """One Ed25519 key for both processes, written before they start (neither has to create it)."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _wait_ready(url: str, api: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if api.poll() is not None:
            pytest.fail(f"the API exited with {api.returncode} at start:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the API did not become ready in {START_TIMEOUT_S:g} s:\n{_tail(log)}")


def _tenant_admin(url: str, bootstrap_key: str) -> str:
    headers = {"Authorization": f"Bearer {bootstrap_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        tenant = http.post("/v1/tenants", json={"name": f"cli-{secrets.token_hex(4)}"})
        assert tenant.status_code == 201, tenant.text
        body = {"name": "cli tests", "role": "admin", "tenant_id": tenant.json()["id"]}
        key = http.post("/v1/keys", json=body)
        assert key.status_code == 201, key.text
        return key.json()["key"]


@pytest.fixture(scope="module")
def service_db_url() -> Iterator[str]:
    """A PostgreSQL database of its own: the worker's reconciler acts on every queued request in its database,
    so the session's shared database (other tests' leftovers) must stay out of its reach."""
    with fresh_database("unlearn_cli") as url:
        yield url


@pytest.fixture(scope="module")
def service(
    service_db_url: str, redis_url: str, admin_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    workdir = tmp_path_factory.mktemp("service")
    queue = f"unlearn-cli-test-{secrets.token_hex(6)}"
    key_path = workdir / "audit-signing-key.pem"
    _write_signing_key(key_path)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": service_db_url,
        "REDIS_URL": redis_url,
        "UNLEARN_QUEUE": queue,
        "UNLEARN_STORAGE_DIR": str(workdir / "blobs"),
        "UNLEARN_AUDIT_KEY_PATH": str(key_path),
        "UNLEARN_BOOTSTRAP_ADMIN_KEY": admin_key,
        "UNLEARN_DEVICE": "cpu",
        "UNLEARN_LOG_LEVEL": "INFO",
        # As in the compose stack: both processes write metric samples to one folder, the API's /metrics sums them.
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        "UNLEARN_METRICS_TOKEN": METRICS_TOKEN,
    }
    (workdir / "metrics").mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    api_log, worker_log = workdir / "api.log", workdir / "worker.log"
    procs: list[subprocess.Popen] = []
    try:
        # cwd is a scratch folder: no .env of the checkout and no ./var are picked up.
        with open(api_log, "wb") as out:
            api_cmd = ["-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port)]
            procs.append(subprocess.Popen([sys.executable, *api_cmd], cwd=workdir, env=env, stdout=out, stderr=out))
        with open(worker_log, "wb") as out:
            worker_cmd = [sys.executable, "-m", "workers", "--device", "cpu"]
            procs.append(subprocess.Popen(worker_cmd, cwd=workdir, env=env, stdout=out, stderr=out))
        _wait_ready(url, procs[0], api_log)
        cli_env = {**os.environ, "PYTHONPATH": str(ROOT), "UNLEARN_URL": url}
        cli_env["UNLEARN_API_KEY"] = _tenant_admin(url, admin_key)
        yield Service(url=url, api_key=cli_env["UNLEARN_API_KEY"], workdir=workdir, env=cli_env)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        print(f"--- api log (tail) ---\n{_tail(api_log)}\n--- worker log (tail) ---\n{_tail(worker_log)}")
        client = redis.Redis.from_url(redis_url)
        try:
            for key in client.scan_iter(match=f"*{queue}*"):
                client.delete(key)
        finally:
            client.close()
