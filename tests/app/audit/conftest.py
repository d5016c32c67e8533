"""Fixtures of the stored-log tests: a fresh PostgreSQL database and an SQLite file per module, sessions on
either, and a signing key that the events written in these tests are signed with (as the process's key)."""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.audit.signing import signer_at
from app.core.config import Settings, get_settings
from app.core.db import make_engine
from app.core.migrate import upgrade
from app.main import create_app
from tests.conftest import REDIS_TEST_URL
from tests.pgdb import fresh_database


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with fresh_database("audit_test") as url:
        yield url


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'audit.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request) -> str:
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_db")


@pytest.fixture
def sessions(url) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":  # commits need not wait for the disk here: locking is unchanged

        @event.listens_for(engine, "connect")
        def _fast_commits(dbapi_conn, _record) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute("SET synchronous_commit TO off")
            dbapi_conn.commit()

    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture(scope="module")
def signer_path(tmp_path_factory):
    return tmp_path_factory.mktemp("key") / "audit.pem"


@pytest.fixture(scope="module")
def signer(signer_path):
    return signer_at(signer_path)


@pytest.fixture(autouse=True)
def _process_key(signer_path, monkeypatch) -> Iterator[None]:
    """This process signs the events it writes with the module's key (tests using the `settings` fixture, which
    sets the session's key, override it)."""
    monkeypatch.setenv("UNLEARN_AUDIT_KEY_PATH", str(signer_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@dataclass
class Service:
    """An API on a database of its own (attacks leave the log broken), its settings and the platform admin."""

    url: str
    dialect: str
    settings: Settings
    client: TestClient
    sessions: sessionmaker[Session]
    checkpoint_path: Path


@contextmanager
def _database(dialect: str, tmp_path: Path) -> Iterator[str]:
    if dialect == "postgresql":
        with fresh_database("audit_attack") as url:
            yield url
    else:
        url = f"sqlite:///{tmp_path / 'attack.db'}"
        upgrade(url)
        yield url


def start_service(url: str, tmp_path: Path, monkeypatch, admin_key: str, **env: str) -> Iterator[Service]:
    """The API on ``url`` with its own key and checkpoint file (``env`` adds settings)."""
    queue = f"unlearn-test-audit-{secrets.token_hex(4)}"
    values = {
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_TEST_URL,
        "UNLEARN_QUEUE": queue,
        "UNLEARN_STORAGE_DIR": str(tmp_path / "blobs"),
        "UNLEARN_BOOTSTRAP_ADMIN_KEY": admin_key,
        "UNLEARN_AUDIT_KEY_PATH": str(tmp_path / "audit-signing-key.pem"),
        "UNLEARN_AUDIT_CHECKPOINT_PATH": str(tmp_path / "published" / "checkpoint.txt"),
        "UNLEARN_DEVICE": "cpu",
    } | env
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    settings = Settings(_env_file=None)
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as client:
        yield Service(
            url=url,
            dialect=make_url(url).get_backend_name(),
            settings=settings,
            client=client,
            sessions=app.state.sessionmaker,
            checkpoint_path=settings.audit_checkpoint_path,
        )
    get_settings.cache_clear()
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        for key in client.scan_iter(match=f"rq:*{queue}*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(params=["postgresql", "sqlite"])
def service(request, tmp_path, monkeypatch, admin_key) -> Iterator[Service]:
    with _database(request.param, tmp_path) as url:
        yield from start_service(url, tmp_path, monkeypatch, admin_key)


@pytest.fixture
def service_with_origin(tmp_path, monkeypatch, admin_key) -> Iterator[Service]:
    with _database("sqlite", tmp_path) as url:
        yield from start_service(
            url, tmp_path, monkeypatch, admin_key, UNLEARN_AUDIT_ORIGIN="audit.example.com/unlearn-test"
        )
