"""Data sets record their features' dtype (float, or int64 ids such as token ids) and, for integer features, the
smallest and largest value, so architectures are checked against them at registration.

Existing data sets were float and are read as float32: they get feature_dtype 'float32'.

Revision ID: 0007_plugins
Revises: 0006_erasure
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_plugins"
down_revision: str | Sequence[str] | None = "0006_erasure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("feature_dtype", sa.String(length=16), server_default="float32", nullable=False))
        batch.add_column(sa.Column("feature_range", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("feature_range")
        batch.drop_column("feature_dtype")
