"""Removing a data set: its blob and its rows (the sample ids). A data set that models were trained on answers
409 naming them: remove the models first (DELETE /v1/models/{id}), so no model is left without its data.

In one transaction: the data set's row is written first (a model registered at the same moment either committed
before, and is named in the 409, or fails on its foreign key); the rows are deleted; the blob is unlinked unless
another data set or a version names the same bytes; the caller commits. As for models, the blob goes before the
commit, so a request that fails after that is finished by repeating it. The audit log keeps the blob's sha256.
"""

import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.audit_hook import audit
from app.core.errors import Conflict, NotFound
from app.core.logging import log_event
from app.core.security import Principal
from app.core.storage import BlobStore
from app.datasets import repository
from app.models.repository import blob_in_use

log = logging.getLogger("app.datasets")
MAX_NAMED_MODELS = 100  # model ids listed in a 409


def _has_models(dataset_id: str, model_ids: list[str]) -> Conflict:
    shown = ", ".join(model_ids[:5]) + (f" and {len(model_ids) - 5} more" if len(model_ids) > 5 else "")
    return Conflict(
        f"data set {dataset_id} has {len(model_ids)} model(s) trained on it ({shown}): delete them first",
        model_ids=model_ids[:MAX_NAMED_MODELS],
    )


def remove_dataset(session: Session, *, principal: Principal, dataset_id: str, store: BlobStore) -> None:
    """Delete the data set, its rows and its blob (flushes and unlinks; the caller commits)."""
    dataset = repository.lock_dataset(session, dataset_id=dataset_id, tenant_id=principal.tenant_id)
    if dataset is None:
        raise NotFound(f"data set {dataset_id} not found")
    if model_ids := repository.model_ids(session, dataset_id=dataset_id):
        raise _has_models(dataset_id, model_ids)
    try:
        repository.delete_dataset_rows(session, dataset_id=dataset_id)
    except IntegrityError:  # a model registered on it committed after the check above
        session.rollback()
        raise _has_models(dataset_id, repository.model_ids(session, dataset_id=dataset_id)) from None
    audit(
        session,
        actor=principal.key_id,
        event_type="dataset.deleted",
        tenant_id=principal.tenant_id,
        refs={"dataset_id": dataset_id},
        evidence={"sha256": dataset.blob_sha256, "num_rows": dataset.num_rows, "num_holdout": dataset.num_holdout},
    )
    session.flush()
    removed = not blob_in_use(session, sha256=dataset.blob_sha256)
    if removed:
        store.delete(dataset.blob_sha256)
    log_event(log, "dataset.deleted", dataset_id=dataset_id, num_rows=dataset.num_rows, blob_removed=removed)
