"""Request and response bodies for data sets and their erasures."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DatasetOut(BaseModel):
    id: str
    name: str
    # Training rows in the stored file (erased rows no longer counted) and holdout rows.
    num_rows: int
    num_holdout: int
    # Shape of one row, e.g. [64], [3, 32, 32] or [L] token ids.
    feature_shape: list[int]
    # Stored dtype of the features: float16, bfloat16, float32, float64 or int64 (ids such as token ids).
    feature_dtype: str
    # Integer features only: [smallest, largest] value over training and holdout rows.
    feature_range: list[int] | None = None
    # Number of classes (largest label + 1).
    num_classes: int
    # sha256 and size of the stored safetensors file.
    sha256: str
    size_bytes: int
    # Distinct rows deleted from at least one model trained on this data set (erased rows included).
    deleted_count: int
    # Rows erased from the stored file by compaction (no model carries them; their ids are kept only hashed).
    erased_count: int = 0
    # When the next compaction is due (rows deleted from every model leave the stored file then), else null.
    compaction_due_at: datetime | None = None
    created_at: datetime


class ErasureCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # External sample ids to erase from the data set and every model trained on it (duplicates removed).
    sample_ids: list[str] = Field(max_length=100_000)
    reason: str | None = Field(default=None, max_length=2000)
    # Method of the deletions fanned out to the models: iau (approximate, default) or retrain (exact).
    method: Literal["iau", "retrain"] = "iau"


class ErasureDeletionOut(BaseModel):
    id: str
    model_id: str
    status: str
    result_version: int | None
    error: str | None


class ErasureOut(BaseModel):
    id: str
    dataset_id: str
    # running (deleting from the models, then compacting) | succeeded (erased from the stored data) | failed
    status: Literal["running", "succeeded", "failed"]
    # deleting | compacting | erased
    stage: str
    error: str | None
    # Share of the rows erased from the stored data, 0..1.
    progress: float
    sample_count: int
    rows_erased: int
    # Salted commitment to the sample ids (as in the audit log) and the hex salt that opens it with the ids.
    sample_ids_sha256: str
    commitment_salt: str
    method: str
    reason: str | None
    # One deletion per model that still carried some of the rows when the erasure was accepted.
    deletions: list[ErasureDeletionOut]
    # While running: when the data set's compaction is due.
    compaction_due_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
