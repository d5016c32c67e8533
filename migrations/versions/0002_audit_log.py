"""Audit log: the append-only audit_entries table and the triggers that refuse UPDATE, DELETE and TRUNCATE.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.audit.ddl import append_only_ddl, drop_append_only_ddl

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("refs", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_audit_entries_prev_hash")),
    )
    for column in ("tenant_id", "model_id", "request_id"):
        op.create_index(op.f(f"ix_audit_entries_{column}"), "audit_entries", [column], unique=False)
    for statement in append_only_ddl(op.get_context().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_append_only_ddl(op.get_context().dialect.name):
        op.execute(statement)
    for column in ("tenant_id", "model_id", "request_id"):
        op.drop_index(op.f(f"ix_audit_entries_{column}"), table_name="audit_entries")
    op.drop_table("audit_entries")
