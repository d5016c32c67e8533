"""Removing a model: its versions' checkpoints and gradient caches, its deletion requests and tombstones (which
hold sample ids), and its rows. The audit log keeps what it already held (hashes, counts) and one `model.deleted`
entry.

In one transaction: the model's row is written first, so a worker publishing a version either committed before
(its version is removed too) or finds the model gone and drops the blob it wrote; the rows are deleted; the blobs
no other model or data set names are unlinked; the caller commits. Blobs go before the commit: a request that
fails after that leaves the model listed with blobs missing, and repeating the DELETE finishes the removal
(never a blob left behind that no row names). Jobs still queued for the model find nothing to do and end.
"""

import logging

from sqlalchemy.orm import Session

from app.core.audit_hook import audit
from app.core.db import utcnow
from app.core.errors import NotFound
from app.core.logging import log_event
from app.core.security import Principal
from app.core.storage import BlobStore
from app.datasets import repository as datasets_repository
from app.keys import repository as keys_repository
from app.models import repository

log = logging.getLogger("app.models")


def remove_model(session: Session, *, principal: Principal, model_id: str, store: BlobStore) -> None:
    """Delete the model and everything that hangs off it (flushes and unlinks blobs; the caller commits)."""
    model = repository.lock_model(session, model_id=model_id, tenant_id=principal.tenant_id, at=utcnow())
    if model is None:
        raise NotFound(f"model {model_id} not found")
    # Rows every remaining model has deleted may now leave the stored data set (workers.jobs.compact). Marked
    # first, so that this transaction waits for the data set's row as a compaction's switch does: same order.
    datasets_repository.mark_compaction_due(session, dataset_id=model.dataset_id, at=utcnow())
    versions, requests, cancelled = repository.delete_model_rows(session, model_id=model_id)
    keys_repository.delete_idempotency_scope(
        session, tenant_id=principal.tenant_id, scope=f"POST /v1/models/{model_id}/deletions"
    )
    latest = next((c for v, c, _ in versions if v == model.latest_version), None)
    audit(
        session,
        actor=principal.key_id,
        event_type="model.deleted",
        tenant_id=principal.tenant_id,
        refs={"model_id": model_id, "dataset_id": model.dataset_id},
        evidence={
            "status": model.status,
            "versions": len(versions),
            "latest_version": model.latest_version,
            "checkpoint_sha256": latest,
            "deletion_requests": requests,
            "cancelled_requests": cancelled,
        },
    )
    session.flush()
    removed = 0
    for sha in sorted({sha for _, checkpoint, cache in versions for sha in (checkpoint, cache) if sha}):
        if not repository.blob_in_use(session, sha256=sha):
            store.delete(sha)
            removed += 1
    log_event(
        log, "model.deleted", model_id=model_id, versions=len(versions), cancelled=cancelled, blobs_removed=removed
    )
