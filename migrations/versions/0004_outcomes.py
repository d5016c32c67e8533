"""Deletion outcomes: purpose, escalation, which path removed the rows, and when the removal became exact.

Revision ID: 0004_outcomes
Revises: 0003
Create Date: 2026-11-28 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_outcomes"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deletion_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose", sa.String(length=16), server_default="privacy", nullable=False))
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("removed_by", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("exact_as_of_version", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_deletion_requests_approximate", ["removed_by", "exact_as_of_version", "model_id"], unique=False
        )
    # Requests applied before: a retrain was exact in its own version; an IAU update is approximate until a later
    # retrain of its model (which trained from scratch on the live rows) covers it.
    op.execute(
        "UPDATE deletion_requests SET removed_by = 'retrain', exact_as_of_version = result_version "
        "WHERE status = 'succeeded' AND method = 'retrain'"
    )
    op.execute(
        "UPDATE deletion_requests SET removed_by = 'iau', exact_as_of_version = ("
        "SELECT MIN(r.result_version) FROM deletion_requests r WHERE r.model_id = deletion_requests.model_id "
        "AND r.method = 'retrain' AND r.status = 'succeeded' AND r.result_version > deletion_requests.result_version"
        ") WHERE status = 'succeeded' AND method = 'iau'"
    )


def downgrade() -> None:
    with op.batch_alter_table("deletion_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_deletion_requests_approximate")
        batch_op.drop_column("exact_as_of_version")
        batch_op.drop_column("removed_by")
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("purpose")
