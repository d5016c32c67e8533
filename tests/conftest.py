"""Shared fixtures for the whole suite (API, workers, end to end).

Services: the real PostgreSQL (UNLEARN_TEST_PG_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/postgres,
used only to CREATE/DROP a database) and the real Redis (UNLEARN_TEST_REDIS_URL, default redis://127.0.0.1:6379/0).

Session-scoped:
- `db_url`       a fresh PostgreSQL database `unlearn_test_<random>` migrated to head with Alembic; dropped at end.
- `sqlite_url`   a fresh SQLite file migrated to head.
- `redis_url`    the Redis URL; `queue_name` a unique RQ queue name (`unlearn-test-<random>`) whose keys are
                 removed at the end of the session.
- `admin_key`    the raw UNLEARN_BOOTSTRAP_ADMIN_KEY every app in the session starts with.

Function-scoped:
- `backend`      "postgresql" or "sqlite" (parametrised: tests using `app`/`client` run on both);
                 `backend_url` the matching database URL.
- `storage`      "file" (a blob folder of the test), or "s3" where a test parametrizes it: the blobs then go under
                 a prefix of its own (`s3_prefix`) in the session's `object_store` (a real SeaweedFS server,
                 tests/objectstore.py), with a scratch folder of the test.
- `settings`     Settings for that database, a per-test blob folder, the test Redis and queue; the same values
                 are exported to the environment (DATABASE_URL, REDIS_URL, UNLEARN_QUEUE, UNLEARN_STORAGE_DIR, ...)
                 and the cached get_settings/get_engine/get_sessionmaker are cleared, so worker code run in the
                 test process (or a worker subprocess started with os.environ) sees the same configuration.
- `app`          create_app(settings); `client` a started TestClient (lifespan run, so the bootstrap admin
                 exists) authenticated as the admin of a fresh tenant created for this test: tests are isolated
                 by tenant, the databases are shared by the session.
- `make_key(role)` returns the raw key of a new key with that role in the test's tenant.
- `auth(raw)`    the Authorization header for a raw key.

Helpers to build data sets and checkpoints are in tests/helpers.py (`digits_safetensors()`, `upload_digits()`,
`register_uploaded_model()`, ...).
"""

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from app.core import db as core_db
from app.core.config import Settings, get_settings
from app.core.migrate import upgrade
from app.main import create_app
from tests.objectstore import ObjectStore, seaweedfs
from tests.pgdb import fresh_database

REDIS_TEST_URL = os.environ.get("UNLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    with fresh_database("unlearn_test") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'unlearn.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_TEST_URL


@pytest.fixture(scope="session")
def queue_name(redis_url: str) -> Iterator[str]:
    name = f"unlearn-test-{secrets.token_hex(6)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"rq:*{name}*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(scope="session")
def audit_key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One audit signing key for the session, as one deployment has one key: the session's databases are shared
    by every test, and every entry in them must carry a signature by the key that verifies the log."""
    return tmp_path_factory.mktemp("audit-key") / "audit-signing-key.pem"


@pytest.fixture(scope="session")
def admin_key() -> str:
    return "unl_test_admin_" + secrets.token_urlsafe(16)


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def backend_url(backend: str, request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("db_url" if backend == "postgresql" else "sqlite_url")


def _clear_caches() -> None:
    get_settings.cache_clear()
    core_db.get_engine.cache_clear()
    core_db.get_sessionmaker.cache_clear()


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """The session's S3-compatible object store (SeaweedFS on 127.0.0.1), started by the first test that asks."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as store:
        yield store


@pytest.fixture
def storage() -> str:
    """Where the test's blobs go: "file" (a folder of the test), or "s3" where a test parametrizes it."""
    return "file"


@pytest.fixture
def s3_prefix(storage: str) -> str | None:
    """The key prefix of this test's blobs in the object store (storage "s3"), else None."""
    return f"t-{secrets.token_hex(6)}" if storage == "s3" else None


@pytest.fixture
def settings(
    backend_url: str,
    redis_url: str,
    queue_name: str,
    admin_key: str,
    audit_key_path: Path,
    storage: str,
    s3_prefix: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Settings]:
    env = {
        "DATABASE_URL": backend_url,
        "REDIS_URL": redis_url,
        "UNLEARN_QUEUE": queue_name,
        "UNLEARN_STORAGE_DIR": str(tmp_path / "blobs"),
        "UNLEARN_BOOTSTRAP_ADMIN_KEY": admin_key,
        "UNLEARN_AUDIT_KEY_PATH": str(audit_key_path),
        "UNLEARN_ID_KEY_PATH": str(tmp_path / "id-hash-key"),
        "UNLEARN_DEVICE": "cpu",
    }
    if storage == "s3":
        env.update(request.getfixturevalue("object_store").env(s3_prefix, tmp_path / "scratch"))
    else:
        monkeypatch.delenv("UNLEARN_STORAGE_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _clear_caches()
    yield Settings(_env_file=None)
    _clear_caches()


@pytest.fixture
def app(settings: Settings):
    return create_app(settings)


def auth(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


@pytest.fixture
def root_client(app, admin_key: str) -> Iterator[TestClient]:
    """A started client authenticated with the bootstrap admin key (default tenant, platform admin)."""
    with TestClient(app, headers=auth(admin_key)) as client:
        yield client


@pytest.fixture
def tenant(root_client: TestClient) -> dict:
    """A fresh tenant for this test, with the raw key of its admin in `admin_key`."""
    resp = root_client.post("/v1/tenants", json={"name": f"tenant-{secrets.token_hex(6)}"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    resp = root_client.post("/v1/keys", json={"name": "tenant admin", "role": "admin", "tenant_id": body["id"]})
    assert resp.status_code == 201, resp.text
    return {**body, "admin_key": resp.json()["key"]}


@pytest.fixture
def client(app, root_client: TestClient, tenant: dict) -> Iterator[TestClient]:
    """A started client authenticated as the admin of this test's fresh tenant."""
    with TestClient(app, headers=auth(tenant["admin_key"])) as client:
        yield client


@pytest.fixture
def make_key(client: TestClient):
    def make(role: str, name: str | None = None) -> str:
        resp = client.post("/v1/keys", json={"name": name or f"{role} key", "role": role})
        assert resp.status_code == 201, resp.text
        return resp.json()["key"]

    return make
