"""Data sets: training rows (stored as one safetensors blob), their external ids."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Number of training rows N and holdout rows.
    num_rows: Mapped[int] = mapped_column(Integer)
    num_holdout: Mapped[int] = mapped_column(Integer, default=0)
    # Shape of one row, e.g. [64], [3, 32, 32] or [L] token ids.
    feature_shape: Mapped[list[int]] = mapped_column(JSON)
    # Stored dtype of the features: float16, bfloat16, float32, float64 or int64 (ids such as token ids).
    feature_dtype: Mapped[str] = mapped_column(String(16), default="float32", server_default="float32")
    # Integer features only: [smallest, largest] value over training and holdout rows; None for float features.
    feature_range: Mapped[list[int] | None] = mapped_column(JSON, nullable=True, default=None)
    # Number of classes (max label + 1).
    num_classes: Mapped[int] = mapped_column(Integer)
    # sha256 of the stored safetensors blob (features, labels, holdout_features, holdout_labels).
    blob_sha256: Mapped[str] = mapped_column(String(64))
    blob_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetRow(Base):
    """One training row's external id and its position in the features tensor. Never rewritten."""

    __tablename__ = "dataset_rows"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    # Row index into features / labels.
    row_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[str] = mapped_column(String(255))

    __table_args__ = (UniqueConstraint("dataset_id", "sample_id"),)
