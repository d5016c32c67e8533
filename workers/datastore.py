"""Training data for the jobs: a data set's tensors from its blob, and a model's live rows from its tombstones.

Rows have two numbers. A row's *row number* (``dataset_rows.row_index``) never changes: tombstones, erasures and
the API name rows by it. Its *position* is its index in the tensors of the data set's current blob, which holds
the rows not yet erased in row-number order; compaction (workers.jobs.compact) rewrites the blob without the
erased rows, so a position is a row number minus the number of erased rows before it. Everything here hands
out positions, so the tensors, masks and gradient caches the jobs compute with line up with the blob they read.

A compaction switches the blob only while it holds the locks of every model of the data set, so a job holding
its model's lock reads one consistent row space. A job that holds no lock (the gradient-cache refresh) can see
the switch between two reads: it gets DatasetChanged and lets the next refresh redo the work.

A data set blob is immutable (content-addressed), so the decoded tensors and the sample ids are kept in a small
per-process cache keyed by the blob's sha256; ``drop_stale`` forgets blobs that have since been deleted.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file
from sqlalchemy import and_, select
from sqlalchemy.orm import Session
from torch import Tensor

from app.core.config import get_settings
from app.core.storage import BlobStore, open_store
from app.datasets.orm import Dataset, DatasetRow
from app.deletions.orm import Tombstone
from app.models.orm import Model

_CACHE_SIZE = 2  # data sets kept decoded per process
_LOAD_ATTEMPTS = 3  # reads of a data set that a compaction may switch in between


class DatasetChanged(Exception):
    """A compaction switched the data set to a new blob while it was being read."""


@dataclass(frozen=True)
class TrainingData:
    features: Tensor  # (N, ...) float32, or int64 ids (token ids) when the data set stores integers; by position
    labels: Tensor  # (N,) int64
    holdout: tuple[Tensor, Tensor] | None  # (features (H, ...), labels (H,)) or None
    sample_ids: list[str]  # external id of each row, by position
    blob_sha256: str = ""  # the blob these tensors were read from

    @property
    def num_rows(self) -> int:
        return int(self.labels.shape[0])


_cache: OrderedDict[str, TrainingData] = OrderedDict()


def get_store() -> BlobStore:
    """This process's blob store (one per configuration: an object store keeps its client and connections)."""
    settings = get_settings()
    return _open_store(settings.storage_url, settings.storage_dir, settings.scratch_dir, settings.scratch_cache_bytes)


@lru_cache(maxsize=4)
def _open_store(url: str | None, folder: Path, scratch: Path, cache_bytes: int) -> BlobStore:
    """Keyed by the settings that decide the store, so that a changed configuration (tests) opens a new one."""
    return open_store(get_settings())


def _rows(features: Tensor) -> Tensor:
    """Float features as float32; integer features (token ids) as int64."""
    return features.to(torch.float32 if features.is_floating_point() else torch.int64)


def load_dataset(session: Session, dataset_id: str) -> TrainingData:
    """The data set's tensors and the sample ids of its rows by position (cached per process by blob hash)."""
    for _ in range(_LOAD_ATTEMPTS):
        found = session.execute(select(Dataset.blob_sha256).where(Dataset.id == dataset_id)).first()
        if found is None:
            raise LookupError(f"data set {dataset_id} does not exist")
        key = found[0]
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        try:
            tensors = load_file(str(get_store().local_path(key)), device="cpu")
        except FileNotFoundError:
            continue  # compacted since the row was read: read it again
        labels = tensors["labels"].to(torch.int64)
        sample_ids = list(
            session.execute(
                select(DatasetRow.sample_id)
                .where(DatasetRow.dataset_id == dataset_id, DatasetRow.erased_at.is_(None))
                .order_by(DatasetRow.row_index)
            ).scalars()
        )
        if len(sample_ids) != labels.shape[0]:
            continue  # the rows were read after a switch the blob was read before
        holdout = None
        if "holdout_features" in tensors and "holdout_labels" in tensors and tensors["holdout_labels"].numel() > 0:
            holdout = (_rows(tensors["holdout_features"]), tensors["holdout_labels"].to(torch.int64))
        features = _rows(tensors["features"])
        data = TrainingData(features, labels, holdout, sample_ids, blob_sha256=key)
        _cache[key] = data
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return data
    raise DatasetChanged(f"data set {dataset_id} was compacted while it was read")


def drop_stale() -> int:
    """Forget decoded data sets whose blob is gone (compacted away); returns how many were dropped."""
    store = get_store()
    stale = [key for key in list(_cache) if not store.exists(key)]
    for key in stale:
        _cache.pop(key, None)
    return len(stale)


def row_space(session: Session, dataset_id: str) -> tuple[int, Tensor]:
    """(rows in the current blob, sorted row numbers of the erased rows (E,) int64), read in one statement."""
    rows = session.execute(
        select(Dataset.num_rows, DatasetRow.row_index)
        .select_from(Dataset)
        .outerjoin(
            DatasetRow,
            and_(DatasetRow.dataset_id == Dataset.id, DatasetRow.erased_at.is_not(None)),
        )
        .where(Dataset.id == dataset_id)
    ).all()
    if not rows:
        raise LookupError(f"data set {dataset_id} does not exist")
    erased = sorted(r[1] for r in rows if r[1] is not None)
    return int(rows[0][0]), torch.tensor(erased, dtype=torch.int64)


def positions(row_numbers: Tensor, erased: Tensor) -> Tensor:
    """Positions (K',) of the given row numbers (K,) in a blob without the ``erased`` rows; erased ones dropped."""
    row_numbers = row_numbers.to(torch.int64)
    if erased.numel() == 0 or row_numbers.numel() == 0:
        return row_numbers
    before = torch.searchsorted(erased, row_numbers)  # erased rows numbered below each row
    hit = before < erased.numel()
    is_erased = torch.zeros_like(hit)
    is_erased[hit] = erased[before[hit]] == row_numbers[hit]
    return (row_numbers - before)[~is_erased]


def _model_row_space(session: Session, model_id: str) -> tuple[int, Tensor]:
    dataset_id = session.scalar(select(Model.dataset_id).where(Model.id == model_id))
    if dataset_id is None:
        raise LookupError(f"model {model_id} does not exist")
    return row_space(session, dataset_id)


def deleted_mask(session: Session, model_id: str, num_rows: int, *, as_of_version: int | None = None) -> Tensor:
    """BoolTensor (N,) by position: rows already deleted from the model (at `as_of_version` when given).

    `num_rows` is the row count of the blob the caller read; DatasetChanged when the data set has moved on."""
    current, erased = _model_row_space(session, model_id)
    if current != num_rows:
        raise DatasetChanged(f"the data set of model {model_id} has {current} rows now, not {num_rows}")
    query = select(Tombstone.row_index).where(Tombstone.model_id == model_id, Tombstone.state == "deleted")
    if as_of_version is not None:
        query = query.where(Tombstone.deleted_in_version <= as_of_version)
    mask = torch.zeros(num_rows, dtype=torch.bool)
    index = list(session.execute(query).scalars())
    if index:
        mask[positions(torch.tensor(index, dtype=torch.int64), erased)] = True
    return mask


def live_mask(session: Session, model_id: str, num_rows: int, *, as_of_version: int | None = None) -> Tensor:
    """BoolTensor (N,) by position: rows the model still carries (pending deletions are still live)."""
    return ~deleted_mask(session, model_id, num_rows, as_of_version=as_of_version)


def request_rows(session: Session, model_id: str, request_ids: list[str]) -> dict[str, list[int]]:
    """Positions of the rows claimed (pending tombstones) by each request."""
    out: dict[str, list[int]] = {rid: [] for rid in request_ids}
    rows = session.execute(
        select(Tombstone.request_id, Tombstone.row_index).where(
            Tombstone.model_id == model_id, Tombstone.request_id.in_(request_ids), Tombstone.state == "pending"
        )
    ).all()
    if not rows:
        return out
    _, erased = _model_row_space(session, model_id)
    numbers = torch.tensor([r[1] for r in rows], dtype=torch.int64)
    if erased.numel():
        before = torch.searchsorted(erased, numbers)
        numbers = numbers - before  # pending rows are never erased: every model still carries them
    for (request_id, _), position in zip(rows, numbers.tolist(), strict=True):
        out[request_id].append(position)
    return out
