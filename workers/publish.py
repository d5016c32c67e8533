"""Publication and retention: the transactions that make a version visible, fail requests, and purge.

publish_version is the publication point of a deletion update: one transaction records the new version, the
requests' results, the tombstones, the superseded version's purge (its download answers 410 from that moment,
docs/api.md), the audit entries and the data set's due compaction (workers.jobs.compact), after the
checkpoint blob is fully written. A crash before its commit leaves nothing visible; after it, the requests are
`succeeded` and a retry does nothing. The superseded blobs are deleted right after the commit, and again by the
reconciler if a crash came in between.

A version trained from scratch on the live rows (`exact`: a retrain request, an escalation, a consolidation) also
makes every earlier approximate removal of the model exact, in the same transaction (workers.consolidation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.db import session_scope, utcnow
from app.core.metrics import record_failures
from app.datasets.orm import Dataset
from app.deletions.orm import DeletionRequest, Tombstone
from app.models.orm import Model, ModelVersion
from workers.consolidation import mark_covered
from workers.datastore import get_store
from workers.jobs.common import audit, audit_many, event

LEFTOVER_WINDOW = timedelta(days=1)  # how far back the reconciler looks for blobs of purged versions


class PublishConflict(Exception):
    """The model or its requests changed under the update (never expected while the lock is held)."""


class ModelRemoved(PublishConflict):
    """The model was removed (DELETE /v1/models/{id}) while the update ran: there is nothing to publish to."""


def model_exists(model_id: str) -> bool:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Model).where(Model.id == model_id)) > 0


@dataclass
class Outcome:
    request_id: str
    evidence: dict[str, Any]


def publish_version(
    *,
    model_id: str,
    base_version: int,
    checkpoint_sha256: str,
    checkpoint_size: int,
    outcomes: list[Outcome],
    evidence_summary: dict[str, Any],
    job_id: str | None,
    removed_by: str = "iau",
    exact_trigger: str | None = None,
) -> int:
    """Commit version base_version + 1 with everything it applied; returns the new version number.

    `removed_by` is recorded on the requests (iau, retrain, retrain_escalated). `exact_trigger` (retrain,
    escalation, deletions, hours) says the checkpoint was trained from scratch on the live rows: the requests and
    every approximate removal before them become exact as of the new version."""

    request_ids = [o.request_id for o in outcomes]
    with session_scope() as session:
        model = session.execute(select(Model).where(Model.id == model_id).with_for_update()).scalar_one_or_none()
        if model is None:
            raise ModelRemoved(f"model {model_id} was removed during the update")
        if model.latest_version != base_version:
            raise PublishConflict(f"model {model_id} is at version {model.latest_version}, not {base_version}")
        requests = {
            r.id: r
            for r in session.execute(
                select(DeletionRequest).where(DeletionRequest.id.in_(request_ids)).with_for_update()
            ).scalars()
        }
        stale = [rid for rid in request_ids if rid not in requests or requests[rid].status != "running"]
        if stale:
            raise PublishConflict(f"requests no longer running: {', '.join(stale)}")
        new_version = base_version + 1
        now = utcnow()
        if exact_trigger is not None:
            evidence_summary = {
                **evidence_summary,
                "exact": {"trigger": exact_trigger, "covers_requests_through_version": new_version},
            }
        session.add(
            ModelVersion(
                model_id=model_id,
                version=new_version,
                parent_version=base_version,
                checkpoint_sha256=checkpoint_sha256,
                checkpoint_size=checkpoint_size,
                applied_requests=request_ids,
                evidence_summary=evidence_summary,
                state="available",
                created_at=now,
            )
        )
        for outcome in outcomes:
            request = requests[outcome.request_id]
            request.status = "succeeded"
            request.stage = "done"
            request.progress = 1.0
            request.result_version = new_version
            request.evidence = outcome.evidence
            request.error = None
            request.finished_at = now
            request.job_id = job_id or request.job_id
            request.removed_by = removed_by
            request.exact_as_of_version = new_version if exact_trigger is not None else None
        session.execute(
            update(Tombstone)
            .where(
                Tombstone.model_id == model_id,
                Tombstone.request_id.in_(request_ids),
                Tombstone.state == "pending",
            )
            .values(state="deleted", deleted_in_version=new_version, deleted_at=now)
        )
        model.latest_version = new_version
        mark_compaction_due(session, model.dataset_id, now)
        succeeded = [
            {
                "event_type": "deletion.succeeded",
                "tenant_id": model.tenant_id,
                "refs": {"request_id": o.request_id, "model_id": model_id, "version": new_version},
                "evidence": o.evidence,
            }
            for o in outcomes
        ]
        created = {
            "event_type": "version.created",
            "tenant_id": model.tenant_id,
            "refs": {
                "model_id": model_id,
                "version": new_version,
                "parent_version": base_version,
                "checkpoint_sha256": checkpoint_sha256,
                "applied_requests": request_ids,
            },
            "evidence": evidence_summary,
        }
        audit_many(session, [*succeeded, created])
        if exact_trigger is not None:
            session.flush()
            mark_covered(session, model=model, version=new_version, trigger=exact_trigger)
        # In the same transaction, after the new version's entries: the log reads "created N+1, purged N".
        superseded = _mark_purged(session, model, base_version, superseded_by=new_version)
    if superseded is not None:
        delete_blob_if_unused(superseded[0])
        delete_blob_if_unused(superseded[1])
        event("version.purged", model_id=model_id, version=base_version)
    _enqueue_compaction(model.dataset_id)
    return new_version


def mark_compaction_due(session: Session, dataset_id: str, now) -> None:
    """In the caller's transaction: the data set's compaction is due in Settings.compaction_delay_s (an earlier
    due time is kept), so that the reconciler runs it even if the enqueue after the commit is lost."""
    due = now + timedelta(seconds=get_settings().compaction_delay_s)
    session.execute(
        update(Dataset).where(Dataset.id == dataset_id).values(compact_after=func.coalesce(Dataset.compact_after, due))
    )


def _enqueue_compaction(dataset_id: str) -> None:
    """After a publication: compact the data set once the delay has passed (rows no model carries leave it)."""
    from workers.queue import enqueue_compaction

    try:
        enqueue_compaction(dataset_id, delay_s=get_settings().compaction_delay_s)
    except Exception as exc:  # noqa: BLE001 - the data set is due in the database: the reconciler enqueues it
        event("compaction.enqueue_failed", dataset_id=dataset_id, error=type(exc).__name__)


def fail_requests(*, model_id: str, reasons: dict[str, str]) -> None:
    """Mark requests failed for good: nothing is deleted (their pending tombstones are removed)."""
    request_ids = list(reasons)
    with session_scope() as session:
        model = session.get(Model, model_id)
        now = utcnow()
        requests = session.execute(
            select(DeletionRequest).where(
                DeletionRequest.id.in_(request_ids), DeletionRequest.status.in_(("queued", "running"))
            )
        ).scalars()
        failed = []
        for request in requests:
            request.status = "failed"
            request.stage = "failed"
            request.error = reasons[request.id]
            request.finished_at = now
            failed.append(request.id)
        if not failed:
            return
        session.execute(
            delete(Tombstone).where(
                Tombstone.model_id == model_id, Tombstone.request_id.in_(failed), Tombstone.state == "pending"
            )
        )
        session.flush()
        for request_id in failed:
            audit(
                session,
                event_type="deletion.failed",
                tenant_id=model.tenant_id,
                refs={"request_id": request_id, "model_id": model_id},
                evidence={"error": reasons[request_id]},
            )
    record_failures("deletion", "permanent", len(failed))
    for request_id in failed:
        event("deletion.failed", model_id=model_id, deletion_id=request_id)


def _blob_in_use(session: Session, sha256: str) -> bool:
    """True when an available version (of any model), a gradient cache or a data set still names the blob."""
    versions = session.execute(
        select(func.count())
        .select_from(ModelVersion)
        .where(
            ModelVersion.state == "available",
            (ModelVersion.checkpoint_sha256 == sha256) | (ModelVersion.grad_cache_sha256 == sha256),
        )
    ).scalar_one()
    datasets = session.execute(
        select(func.count()).select_from(Dataset).where(Dataset.blob_sha256 == sha256)
    ).scalar_one()
    return bool(versions or datasets)


def blobs_in_use(session: Session, shas: list[str]) -> set[str]:
    """Those of `shas` that an available version (checkpoint or gradient cache) or a data set still names."""
    found: set[str] = set()
    for i in range(0, len(shas), 500):
        part = shas[i : i + 500]
        rows = session.execute(
            select(ModelVersion.checkpoint_sha256, ModelVersion.grad_cache_sha256).where(
                ModelVersion.state == "available",
                ModelVersion.checkpoint_sha256.in_(part) | ModelVersion.grad_cache_sha256.in_(part),
            )
        ).all()
        found.update(sha for pair in rows for sha in pair if sha)
        found.update(session.execute(select(Dataset.blob_sha256).where(Dataset.blob_sha256.in_(part))).scalars())
    return found & set(shas)


def delete_blob_if_unused(sha256: str | None) -> bool:
    if not sha256:
        return False
    with session_scope() as session:
        if _blob_in_use(session, sha256):
            return False
    get_store().delete(sha256)
    return True


def _mark_purged(session: Session, model: Model, version: int, *, superseded_by: int) -> tuple[str, str | None] | None:
    """In the caller's transaction: the version becomes `purged` (downloads answer 410) and is audited.

    Returns its (checkpoint sha256, gradient cache sha256) so the caller deletes the blobs after the commit.
    """
    row = session.execute(
        update(ModelVersion)
        .where(
            ModelVersion.model_id == model.id,
            ModelVersion.version == version,
            ModelVersion.state == "available",
        )
        .values(state="purged", purged_at=utcnow())
        .returning(ModelVersion.checkpoint_sha256, ModelVersion.grad_cache_sha256)
    ).first()
    session.flush()
    if row is None:
        return None
    checkpoint_sha, cache_sha = row
    audit(
        session,
        event_type="version.purged",
        tenant_id=model.tenant_id,
        refs={"model_id": model.id, "version": version, "checkpoint_sha256": checkpoint_sha},
        evidence={"superseded_by": superseded_by},
    )
    return checkpoint_sha, cache_sha


def purge_version(*, model_id: str, version: int) -> bool:
    """Purge a superseded version left available (e.g. by an older release); then its blobs go."""
    with session_scope() as session:
        model = session.get(Model, model_id)
        if model is None or model.latest_version is None or version >= model.latest_version:
            return False  # only a superseded version is purged
        shas = _mark_purged(session, model, version, superseded_by=model.latest_version)
    if shas is None:
        return False
    delete_blob_if_unused(shas[0])
    delete_blob_if_unused(shas[1])
    event("version.purged", model_id=model_id, version=version)
    return True


def leftover_blobs(*, within: timedelta = LEFTOVER_WINDOW) -> list[str]:
    """Blobs of versions purged within `within` that are still on disk (a crash between commit and delete)."""
    store = get_store()
    with session_scope() as session:
        rows = session.execute(
            select(ModelVersion.checkpoint_sha256, ModelVersion.grad_cache_sha256).where(
                ModelVersion.state == "purged", ModelVersion.purged_at >= utcnow() - within
            )
        ).all()
    return [sha for pair in rows for sha in pair if sha and store.exists(sha)]


def superseded_versions() -> list[tuple[str, int]]:
    """(model_id, version) of every available version older than its model's latest (left by a crash)."""
    with session_scope() as session:
        rows = session.execute(
            select(ModelVersion.model_id, ModelVersion.version)
            .join(Model, Model.id == ModelVersion.model_id)
            .where(ModelVersion.state == "available", ModelVersion.version < Model.latest_version)
        ).all()
    return [(m, v) for m, v in rows]
