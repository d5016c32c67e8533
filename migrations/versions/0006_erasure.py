"""Erasure of stored data: erased rows, compactions, data set erasures, salted request commitments.

Revision ID: 0006_erasure
Revises: 0003
Create Date: 2026-11-27 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_erasure"
down_revision: str | Sequence[str] | None = "0005_audit_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_rows", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("compact_after", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_datasets_compact_after"), ["compact_after"], unique=False)
    with op.batch_alter_table("dataset_rows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("deletion_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sample_ids_sha256", sa.String(length=64), nullable=True))

    op.create_table(
        "dataset_erasures",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("sample_ids", sa.JSON(), nullable=False),
        sa.Column("sample_ids_sha256", sa.String(length=64), nullable=False),
        sa.Column("row_indexes", sa.JSON(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requester", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_erasures_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_dataset_erasures_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_erasures")),
    )
    with op.batch_alter_table("dataset_erasures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dataset_erasures_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dataset_erasures_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "erasure_deletions",
        sa.Column("erasure_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["erasure_id"],
            ["dataset_erasures.id"],
            name=op.f("fk_erasure_deletions_erasure_id_dataset_erasures"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["deletion_requests.id"],
            name=op.f("fk_erasure_deletions_request_id_deletion_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("erasure_id", "request_id", name=op.f("pk_erasure_deletions")),
    )

    op.create_table(
        "dataset_compactions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("from_blob", sa.String(length=64), nullable=False),
        sa.Column("to_blob", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("old_blobs", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_compactions_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_compactions")),
    )
    with op.batch_alter_table("dataset_compactions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dataset_compactions_dataset_id"), ["dataset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dataset_compactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_compactions_dataset_id"))
    op.drop_table("dataset_compactions")
    op.drop_table("erasure_deletions")
    with op.batch_alter_table("dataset_erasures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_erasures_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_dataset_erasures_dataset_id"))
    op.drop_table("dataset_erasures")
    with op.batch_alter_table("deletion_requests", schema=None) as batch_op:
        batch_op.drop_column("sample_ids_sha256")
    with op.batch_alter_table("dataset_rows", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datasets_compact_after"))
        batch_op.drop_column("compact_after")
        batch_op.drop_column("erased_rows")
