"""Training data for the jobs: a data set's tensors from its blob, and a model's live rows from its tombstones.

A data set blob is immutable (content-addressed), so the decoded tensors and the sample ids are kept in a small
per-process cache keyed by the blob's sha256.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from safetensors.torch import load_file
from sqlalchemy import select
from sqlalchemy.orm import Session
from torch import Tensor

from app.core.config import get_settings
from app.core.storage import BlobStore
from app.datasets.orm import Dataset, DatasetRow
from app.deletions.orm import Tombstone

_CACHE_SIZE = 2  # data sets kept decoded per process


@dataclass(frozen=True)
class TrainingData:
    features: Tensor  # (N, ...) float32, or int64 ids (token ids) when the data set stores integers
    labels: Tensor  # (N,) int64
    holdout: tuple[Tensor, Tensor] | None  # (features (H, ...), labels (H,)) or None
    sample_ids: list[str]  # external id of each row, by row index

    @property
    def num_rows(self) -> int:
        return int(self.labels.shape[0])


_cache: OrderedDict[str, TrainingData] = OrderedDict()


def get_store() -> BlobStore:
    return BlobStore(get_settings().storage_dir)


def _rows(features: Tensor) -> Tensor:
    """Float features as float32; integer features (token ids) as int64."""
    return features.to(torch.float32 if features.is_floating_point() else torch.int64)


def load_dataset(session: Session, dataset_id: str) -> TrainingData:
    """The data set's tensors and sample ids (cached per process by blob hash)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise LookupError(f"data set {dataset_id} does not exist")
    key = dataset.blob_sha256
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    tensors = load_file(str(get_store().path(key)), device="cpu")
    features = _rows(tensors["features"])
    labels = tensors["labels"].to(torch.int64)
    holdout = None
    if "holdout_features" in tensors and "holdout_labels" in tensors and tensors["holdout_labels"].numel() > 0:
        holdout = (_rows(tensors["holdout_features"]), tensors["holdout_labels"].to(torch.int64))
    rows = session.execute(
        select(DatasetRow.row_index, DatasetRow.sample_id).where(DatasetRow.dataset_id == dataset_id)
    ).all()
    sample_ids = [""] * labels.shape[0]
    for index, sample_id in rows:
        sample_ids[index] = sample_id
    data = TrainingData(features=features, labels=labels, holdout=holdout, sample_ids=sample_ids)
    _cache[key] = data
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return data


def deleted_mask(session: Session, model_id: str, num_rows: int, *, as_of_version: int | None = None) -> Tensor:
    """BoolTensor (N,): rows already deleted from the model (at `as_of_version` when given)."""
    query = select(Tombstone.row_index).where(Tombstone.model_id == model_id, Tombstone.state == "deleted")
    if as_of_version is not None:
        query = query.where(Tombstone.deleted_in_version <= as_of_version)
    mask = torch.zeros(num_rows, dtype=torch.bool)
    index = list(session.execute(query).scalars())
    if index:
        mask[torch.tensor(index, dtype=torch.int64)] = True
    return mask


def live_mask(session: Session, model_id: str, num_rows: int, *, as_of_version: int | None = None) -> Tensor:
    """BoolTensor (N,): rows the model still carries (pending deletions are still live)."""
    return ~deleted_mask(session, model_id, num_rows, as_of_version=as_of_version)


def request_rows(session: Session, model_id: str, request_ids: list[str]) -> dict[str, list[int]]:
    """Row indices claimed (pending tombstones) by each request."""
    out: dict[str, list[int]] = {rid: [] for rid in request_ids}
    rows = session.execute(
        select(Tombstone.request_id, Tombstone.row_index).where(
            Tombstone.model_id == model_id, Tombstone.request_id.in_(request_ids), Tombstone.state == "pending"
        )
    ).all()
    for request_id, row_index in rows:
        out[request_id].append(row_index)
    return out
