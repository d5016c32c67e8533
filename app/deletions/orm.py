"""Deletion requests: the obligation to remove named training rows from a model."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class DeletionRequest(Base):
    __tablename__ = "deletion_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    # Keyed hashes (app.core.idhash) of the sample ids to forget, deduplicated, in the order sent. Requests made
    # before keyed hashes were introduced hold plain ids until the compaction of their data set hashes them.
    sample_ids: Mapped[list[str]] = mapped_column(JSON)
    # Salted commitment to the ids (app.audit.commitments), as logged; None for requests made before.
    sample_ids_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # iau (default) | retrain (exact)
    method: Mapped[str] = mapped_column(String(16), default="iau")
    # privacy (default: the rows must become indistinguishable from unseen ones) | poison (the behaviour the rows
    # taught must go); picks the target of the approximate update.
    purpose: Mapped[str] = mapped_column(String(16), default="privacy", server_default="privacy")
    # queued | running | succeeded | failed
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    # Free-text phase while running (e.g. "loading", "correction", "evidence", "publishing") and 0..1 progress.
    stage: Mapped[str | None] = mapped_column(String(64), default=None)
    progress: Mapped[float] = mapped_column(default=0.0)
    base_version: Mapped[int | None] = mapped_column(Integer, default=None)
    result_version: Mapped[int | None] = mapped_column(Integer, default=None)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set when the approximate update missed its target and the model's policy owes an exact retrain (the request
    # is queued again for it; its evidence keeps the missed outcome under `escalated_from`).
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Which path removed the rows, once succeeded: iau | retrain | retrain_escalated.
    removed_by: Mapped[str | None] = mapped_column(String(24), default=None)
    # First version retrained from scratch without the rows (an exact retrain, an escalation or a consolidation);
    # None while the removal is only approximate.
    exact_as_of_version: Mapped[int | None] = mapped_column(Integer, default=None)
    # RQ job id of the latest enqueue (used by the reconciler to find requests with no live job).
    job_id: Mapped[str | None] = mapped_column(String(64), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    # API key id of the requester (never the key itself).
    requester: Mapped[str | None] = mapped_column(String(36), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    # Finds the approximate removals of a model (removed_by = 'iau' and exact_as_of_version IS NULL).
    __table_args__ = (Index("ix_deletion_requests_approximate", "removed_by", "exact_as_of_version", "model_id"),)


class Tombstone(Base):
    """A training row claimed by a deletion request against one model.

    Inserted with state ``pending`` in the same transaction as the request (the primary key makes a second
    claim on the same row fail: 409), switched to ``deleted`` in the publishing transaction, and removed if the
    request fails for good. ``row_index`` is the row's number in dataset_rows, which never changes (compaction
    removes erased rows from the stored blob, not from the numbering). ``sample_id`` is the keyed hash of the id.
    """

    __tablename__ = "tombstones"

    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), primary_key=True)
    row_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[str] = mapped_column(String(255))
    request_id: Mapped[str] = mapped_column(ForeignKey("deletion_requests.id"), index=True)
    # pending | deleted
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # Version that no longer carries this row (set when published).
    deleted_in_version: Mapped[int | None] = mapped_column(Integer, default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
