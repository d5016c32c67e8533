"""Fixtures of the stored-log tests: a fresh PostgreSQL database and an SQLite file per module, sessions on
either, and a signing key that the events written in these tests are signed with (as the process's key)."""

from collections.abc import Iterator

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from app.audit.signing import signer_at
from app.core.config import get_settings
from app.core.db import make_engine
from app.core.migrate import upgrade
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
