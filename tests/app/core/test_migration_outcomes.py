"""Migration 0004_outcomes marks the requests applied before it: retrains exact in their own version, IAU removals
approximate unless a later retrain of their model covers them (PostgreSQL and SQLite)."""

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from app.core.migrate import alembic_config, upgrade
from tests.pgdb import fresh_database

REQUESTS = [  # id, method, status, result_version
    ("r-iau-1", "iau", "succeeded", 2),
    ("r-retrain", "retrain", "succeeded", 3),
    ("r-iau-2", "iau", "succeeded", 4),
    ("r-failed", "iau", "failed", None),
    ("r-queued", "iau", "queued", None),
]


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request, tmp_path):
    """A database of its own at head."""
    if request.param == "sqlite":
        sqlite_url = f"sqlite:///{tmp_path / 'm.db'}"
        upgrade(sqlite_url)
        yield sqlite_url
        return
    with fresh_database("unlearn_mig") as pg_url:
        yield pg_url


def test_requests_applied_before_are_marked(url):
    command.downgrade(alembic_config(url), "0003")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', CURRENT_TIMESTAMP)"))
        conn.execute(
            text(
                "INSERT INTO datasets (id, tenant_id, name, num_rows, num_holdout, feature_shape, num_classes, "
                "blob_sha256, blob_size, created_at) VALUES ('d', 't', 'd', 1, 0, '[1]', 2, 'x', 1, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO models (id, tenant_id, name, dataset_id, architecture, unlearn_defaults, status, "
                "created_at, updated_at) VALUES ('m', 't', 'm', 'd', '{}', '{}', 'ready', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
        for rid, method, status, result in REQUESTS:
            conn.execute(
                text(
                    "INSERT INTO deletion_requests (id, tenant_id, model_id, sample_ids, method, status, progress, "
                    "attempts, result_version, created_at) VALUES (:id, 't', 'm', '[]', :method, :status, 0, 1, "
                    ":result, CURRENT_TIMESTAMP)"
                ),
                {"id": rid, "method": method, "status": status, "result": result},
            )
    engine.dispose()
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, purpose, removed_by, exact_as_of_version FROM deletion_requests ORDER BY id")
        ).all()
    engine.dispose()
    assert {r[0]: tuple(r[1:]) for r in rows} == {
        "r-iau-1": ("privacy", "iau", 3),  # the later retrain covers it
        "r-iau-2": ("privacy", "iau", None),  # still approximate: counts toward consolidation
        "r-retrain": ("privacy", "retrain", 3),
        "r-failed": ("privacy", None, None),
        "r-queued": ("privacy", None, None),
    }
