"""Audit hardening: signed entries (event_id, signature), outbox triggers, the application role (PostgreSQL).

Events still waiting in the outbox are chained first, unsigned, as the previous release would have chained them.
Entries already in the log stay as they are (their hashes are in tree heads and receipts already issued): the
migration prints how many there are; set UNLEARN_AUDIT_LEGACY_ENTRIES to that number so that verification
accepts them without a signature (docs/audit.md).

Revision ID: 0005_audit_hardening
Revises: 0004_outcomes
Create Date: 2026-11-28 10:00:00
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.audit.ddl import drop_hardening_ddl, hardening_ddl

revision: str = "0005_audit_hardening"
down_revision: str | Sequence[str] | None = "0004_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def _chain_pending_outbox(bind: sa.engine.Connection) -> None:
    """Chain the outbox's events into audit_entries, unsigned (the previous release's format)."""
    from app.audit.canonical import GENESIS_HASH, compute_entry_hash, format_timestamp

    outbox = sa.table(
        "audit_outbox",
        *(sa.column(c) for c in ("id", "tenant_id", "actor", "event_type")),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("refs", sa.JSON()),
        sa.column("evidence", sa.JSON()),
    )
    entries = sa.table(
        "audit_entries",
        *(sa.column(c) for c in ("seq", "tenant_id", "actor", "event_type", "model_id", "request_id")),
        *(sa.column(c) for c in ("prev_hash", "entry_hash")),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("refs", sa.JSON()),
        sa.column("evidence", sa.JSON()),
    )
    rows = bind.execute(sa.select(outbox).order_by(outbox.c.id)).mappings().all()
    if not rows:
        return
    last = bind.execute(sa.select(entries.c.seq, entries.c.entry_hash).order_by(entries.c.seq.desc()).limit(1)).first()
    seq, prev = (0, GENESIS_HASH) if last is None else (last[0], last[1])
    for row in rows:
        seq += 1
        fields = {k: row[k] for k in ("created_at", "tenant_id", "actor", "event_type", "refs", "evidence")}
        fields |= {"seq": seq, "prev_hash": prev}
        prev = compute_entry_hash(fields | {"created_at": format_timestamp(row["created_at"])})
        refs = row["refs"] or {}
        ids = {k: None if refs.get(k) is None else str(refs[k]) for k in ("model_id", "request_id")}
        bind.execute(sa.insert(entries).values(**fields, **ids, entry_hash=prev))
    bind.execute(sa.delete(outbox))


def upgrade() -> None:
    bind = op.get_bind()
    dialect = op.get_context().dialect.name
    _chain_pending_outbox(bind)
    legacy = bind.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar_one()
    if legacy:
        log.warning(
            "audit: %s entries predate per-entry signatures; set UNLEARN_AUDIT_LEGACY_ENTRIES=%s", legacy, legacy
        )

    op.add_column("audit_entries", sa.Column("event_id", sa.String(length=32), nullable=True))
    op.add_column("audit_entries", sa.Column("signature", sa.String(length=88), nullable=True))
    op.create_index(op.f("ix_audit_entries_event_id"), "audit_entries", ["event_id"], unique=True)
    with op.batch_alter_table("audit_outbox", recreate="always") as batch_op:
        batch_op.add_column(sa.Column("event_id", sa.String(length=32), nullable=False))
        batch_op.add_column(sa.Column("signature", sa.String(length=88), nullable=False))
        batch_op.create_unique_constraint(batch_op.f("uq_audit_outbox_event_id"), ["event_id"])
    for statement in hardening_ddl(dialect):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().execute(sa.text("SELECT count(*) FROM audit_outbox")).scalar_one():
        raise RuntimeError("the audit outbox holds events: chain them (start a worker) before downgrading")
    for statement in drop_hardening_ddl(op.get_context().dialect.name):
        op.execute(statement)
    with op.batch_alter_table("audit_outbox", recreate="always") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_outbox_event_id"), type_="unique")
        batch_op.drop_column("signature")
        batch_op.drop_column("event_id")
    op.drop_index(op.f("ix_audit_entries_event_id"), table_name="audit_entries")
    op.drop_column("audit_entries", "signature")
    op.drop_column("audit_entries", "event_id")
