"""Data sets: training rows (stored as one safetensors blob), their external ids, erasures and compactions."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Number of training rows in the stored blob (rows erased by compaction are no longer counted) and holdout rows.
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
    # Rows erased from the blob by compaction (they keep their row_index in dataset_rows, with a hashed id).
    erased_rows: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the next compaction is due (set when a deletion publishes or an erasure is accepted), else None.
    compact_after: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetRow(Base):
    """One training row's external id and its row number.

    The row number never changes: tombstones and erasures name rows by it. The stored blob holds the rows not
    yet erased, in row-number order, so a row's position in the blob's tensors is its rank among those rows.
    Compaction erases a row: its features leave the blob and its sample id is replaced by a keyed hash
    (app.core.idhash), so a repeated request for it is still recognised (409) without the id being kept.
    """

    __tablename__ = "dataset_rows"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    # Row index into features / labels.
    row_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[str] = mapped_column(String(255))
    # When compaction erased the row (its sample_id is then a keyed hash), else None.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (UniqueConstraint("dataset_id", "sample_id"),)


class DatasetErasure(Base):
    """A request to erase samples from a data set: one deletion per model trained on it, then compaction."""

    __tablename__ = "dataset_erasures"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    # Keyed hashes of the sample ids (app.core.idhash), never the ids.
    sample_ids: Mapped[list[str]] = mapped_column(JSON)
    # Salted commitment to the ids (app.audit.commitments), as logged.
    sample_ids_sha256: Mapped[str] = mapped_column(String(64))
    # Row numbers of the samples in dataset_rows.
    row_indexes: Mapped[list[int]] = mapped_column(JSON)
    # iau | retrain: the method of the deletions it fans out.
    method: Mapped[str] = mapped_column(String(16), default="iau")
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # API key id of the requester.
    requester: Mapped[str | None] = mapped_column(String(36), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When compaction erased the last of its rows from the stored data.
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ErasureDeletion(Base):
    """A deletion request an erasure fanned out (one per model that still carried some of its rows)."""

    __tablename__ = "erasure_deletions"

    erasure_id: Mapped[str] = mapped_column(ForeignKey("dataset_erasures.id", ondelete="CASCADE"), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("deletion_requests.id", ondelete="CASCADE"), primary_key=True)


class DatasetCompaction(Base):
    """One rewrite of a data set's blob without its erased rows, recorded before the new blob is written.

    writing: the new blob (``to_blob``) is being written; the data set still names ``from_blob``.
    switched: one transaction moved the data set to ``to_blob`` and erased the rows; ``old_blobs`` (the old data
        blob and the gradient caches rewritten) are still to delete.
    done: the old blobs are gone. abandoned: the switch did not happen; ``to_blob`` was deleted if unused.
    A compaction found in ``writing`` or ``switched`` with no job working on its data set is finished or abandoned
    by the next compaction job of that data set.
    """

    __tablename__ = "dataset_compactions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    from_blob: Mapped[str] = mapped_column(String(64))
    to_blob: Mapped[str] = mapped_column(String(64))
    # Rows erased by this compaction.
    rows: Mapped[int] = mapped_column(Integer)
    # writing | switched | done | abandoned
    state: Mapped[str] = mapped_column(String(16), default="writing")
    old_blobs: Mapped[list[str]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
