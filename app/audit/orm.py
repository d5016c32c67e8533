"""The audit log table: one row per entry, never updated or deleted (triggers refuse it, see ddl.py)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    # 1, 2, 3, ... without gaps; assigned under the append lock (service.append_entry).
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Tenant the entry belongs to (None: platform-wide events).
    tenant_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # API key id (never the key) or a worker name such as "worker".
    actor: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    # Copies of refs["model_id"] and refs["request_id"], for indexed filtering; not part of the entry hash.
    model_id: Mapped[str | None] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Identifiers (model_id, request_id, version, dataset_id, key_id, ...), hashed into the entry.
    refs: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Measured evidence (docs/design.md section 4): figures, hashes and commitments only.
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Hex sha256 of the previous entry (64 zeros for the first); unique, so the chain cannot fork.
    prev_hash: Mapped[str] = mapped_column(String(64))
    # Hex sha256 of the canonical encoding of this entry (app.audit.canonical.compute_entry_hash).
    entry_hash: Mapped[str] = mapped_column(String(64))
    # 32 random hex digits naming the event for good; unique, so a copied event cannot be chained twice.
    # None only for entries written before per-entry signatures (migration 0005).
    event_id: Mapped[str | None] = mapped_column(String(32), index=True, unique=True)
    # Base64 Ed25519 signature of the event by the process that created it (app.audit.signing.event_message).
    signature: Mapped[str | None] = mapped_column(String(88))

    __table_args__ = (UniqueConstraint("prev_hash"),)


class AuditOutboxEntry(Base):
    """An event recorded by the API in the transaction of the change it describes, not yet in the chain.

    The API writes here without taking the log's append lock; app.audit.outbox.sequence moves rows into
    ``audit_entries`` in batches, in id order, under the lock, and deletes them in the same transaction. Every
    chained append drains this table first, so an event is always chained before any later event that depends
    on it (a deletion's ``deletion.requested`` before its ``deletion.started``). Triggers refuse UPDATE, and
    DELETE of an event that is not in ``audit_entries`` yet (app.audit.ddl); an event whose signature does not
    verify is never chained (it stays, and raises an alarm).
    """

    __tablename__ = "audit_outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    refs: Mapped[dict[str, Any]] = mapped_column(JSON)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    signature: Mapped[str] = mapped_column(String(88))
