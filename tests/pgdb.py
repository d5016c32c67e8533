"""Fresh PostgreSQL databases for tests: created on the real server, migrated to head, dropped afterwards."""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.migrate import upgrade

# A role that may CREATE DATABASE on the test server (trust auth on 127.0.0.1 here).
PG_ADMIN_URL = os.environ.get("UNLEARN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """The URL of a new database named `<prefix>_<random>`, migrated to head; dropped (forcefully) on exit."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
