"""Registered models and their checkpoint versions."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class Model(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    # {"name": "mlp", "config": {...}}: an installed architecture (the built-in zoo or a plugin).
    architecture: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Training recipe {epochs, batch_size, lr, alpha, seed} when the service trained it; None when uploaded.
    train_recipe: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Unlearning defaults for this model (overrides of the engine's UnlearnConfig fields).
    unlearn_defaults: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # training | ready | failed
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, default=None)
    latest_version: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    # 1 = registration; each successful deletion adds N+1 with parent N.
    version: Mapped[int] = mapped_column(Integer)
    parent_version: Mapped[int | None] = mapped_column(Integer, default=None)
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    checkpoint_size: Mapped[int] = mapped_column(BigInteger)
    # Deletion request ids applied to make this version (empty for version 1).
    applied_requests: Mapped[list[str]] = mapped_column(JSON, default=list)
    evidence_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # available | purged
    state: Mapped[str] = mapped_column(String(16), default="available")
    # Gradient cache G (sum of per-row gradients over this version's live rows at its theta), when computed.
    grad_cache_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    grad_cache_rows: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (UniqueConstraint("model_id", "version"),)
