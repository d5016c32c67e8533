"""Data set registration: validate the upload, store it as a blob, record the rows and their external ids."""

import logging
import uuid

from sqlalchemy.orm import Session

from app.core.audit_hook import audit
from app.core.db import utcnow
from app.core.errors import NotFound, Unprocessable
from app.core.logging import log_event
from app.core.pagination import Page, PageParams
from app.core.security import Principal
from app.core.storage import BlobStore
from app.core.uploads import TempUpload, keep_upload
from app.datasets import repository
from app.datasets.orm import Dataset
from app.datasets.schemas import DatasetOut
from app.datasets.validation import inspect_dataset, parse_ids

log = logging.getLogger("app.datasets")
MAX_NAME_LENGTH = 200


def register_dataset(
    session: Session,
    *,
    principal: Principal,
    name: str,
    upload: TempUpload,
    ids_text: str | None,
    store: BlobStore,
) -> Dataset:
    name = name.strip()
    if not 0 < len(name) <= MAX_NAME_LENGTH:
        raise Unprocessable(f"name must be 1 to {MAX_NAME_LENGTH} characters")
    info = inspect_dataset(upload.path)
    sample_ids = parse_ids(ids_text, num_rows=info.num_rows)
    dataset = Dataset(
        id=str(uuid.uuid4()),
        tenant_id=principal.tenant_id,
        name=name,
        num_rows=info.num_rows,
        num_holdout=info.num_holdout,
        feature_shape=info.feature_shape,
        feature_dtype=info.feature_dtype,
        feature_range=info.feature_range,
        num_classes=info.num_classes,
        blob_sha256=upload.sha256,
        blob_size=upload.size,
        created_at=utcnow(),
    )
    repository.add_dataset(session, dataset=dataset, sample_ids=sample_ids)
    audit(
        session,
        actor=principal.key_id,
        event_type="dataset.registered",
        tenant_id=principal.tenant_id,
        refs={"dataset_id": dataset.id},
        evidence={"sha256": upload.sha256, "num_rows": info.num_rows, "num_holdout": info.num_holdout},
    )
    keep_upload(upload, store=store)  # the blob exists before the rows referring to it commit
    log_event(log, "dataset.registered", dataset_id=dataset.id, num_rows=info.num_rows, sha256=upload.sha256)
    return dataset


def get_dataset(session: Session, *, principal: Principal, dataset_id: str) -> Dataset:
    dataset = repository.get_dataset(session, dataset_id=dataset_id, tenant_id=principal.tenant_id)
    if dataset is None:
        raise NotFound(f"data set {dataset_id} not found")
    return dataset


def list_datasets(session: Session, *, principal: Principal, params: PageParams) -> Page[DatasetOut]:
    rows, cursor = repository.list_datasets(session, tenant_id=principal.tenant_id, params=params)
    items = [dataset_out(session, dataset=d) for d in rows]
    return Page[DatasetOut](items=items, next_cursor=cursor, limit=params.limit)


def dataset_out(session: Session, *, dataset: Dataset) -> DatasetOut:
    return DatasetOut(
        id=dataset.id,
        name=dataset.name,
        num_rows=dataset.num_rows,
        num_holdout=dataset.num_holdout,
        feature_shape=list(dataset.feature_shape),
        feature_dtype=dataset.feature_dtype,
        feature_range=dataset.feature_range,
        num_classes=dataset.num_classes,
        sha256=dataset.blob_sha256,
        size_bytes=dataset.blob_size,
        deleted_count=repository.deleted_row_count(session, dataset_id=dataset.id),
        erased_count=dataset.erased_rows or 0,
        compaction_due_at=dataset.compact_after,
        created_at=dataset.created_at,
    )
