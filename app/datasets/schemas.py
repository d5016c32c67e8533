"""Response bodies for data sets."""

from datetime import datetime

from pydantic import BaseModel


class DatasetOut(BaseModel):
    id: str
    name: str
    # Training rows N and holdout rows.
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
    # Distinct rows deleted from at least one model trained on this data set.
    deleted_count: int
    created_at: datetime
