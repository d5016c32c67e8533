"""Erasure of samples from a data set: one deletion per model trained on it, then the compaction of the data set.

``POST /v1/datasets/{id}/erasures`` records the erasure and, in the same transaction, one deletion request per
ready model of the data set for the rows that model still carries unclaimed (rows already deleted or pending in a
model need nothing more there). Each deletion is applied by the workers as any other; once every model has
applied it, the data set's compaction (workers.jobs.compact) rewrites the stored blob without the rows and
marks the erasure finished. A data set with no model is compacted right away.

The erasure stores keyed hashes of the ids and a commitment salted with its own salt (like a deletion request);
its status is derived on each read from its deletions, the models' tombstones and the rows' erasure.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.commitments import commit_sample_ids
from app.core.audit_hook import audit
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.idhash import get_id_hasher
from app.core.security import Principal
from app.datasets import repository
from app.datasets.orm import Dataset, DatasetErasure, ErasureDeletion
from app.datasets.schemas import ErasureCreate, ErasureDeletionOut, ErasureOut
from app.deletions import repository as deletions_repository
from app.deletions.orm import DeletionRequest, Tombstone
from app.deletions.service import conflict_problem, dedupe, deletion_job_id, quote_ids
from app.models.orm import Model


def create_erasure(
    session: Session, *, principal: Principal, dataset_id: str, body: ErasureCreate, max_ids: int
) -> tuple[DatasetErasure, list[tuple[str, str, str]]]:
    """Validate and record an erasure and its deletions (flushes, never commits).

    Returns the erasure and (request id, model id, job id) of each deletion, to enqueue after the commit."""
    ids = dedupe(body.sample_ids)
    if not ids:
        raise Unprocessable("sample_ids must name at least one sample")
    if len(ids) > max_ids:
        raise Unprocessable(f"at most {max_ids} sample ids per request, got {len(ids)}", limit=max_ids)
    dataset = repository.get_dataset(session, dataset_id=dataset_id, tenant_id=principal.tenant_id)
    if dataset is None:
        raise NotFound(f"data set {dataset_id} not found")
    models = session.execute(select(Model.id, Model.status).where(Model.dataset_id == dataset_id)).all()
    training = sorted(m for m, status in models if status == "training")
    if training:
        raise Conflict(f"model {training[0]} is training on this data set; erase once it is ready", model_ids=training)
    hasher = get_id_hasher()
    rows = repository.rows_for_ids(session, dataset_id=dataset_id, sample_ids=ids)
    unknown = [sid for sid in ids if sid not in rows]
    if unknown:
        hashed = dict(zip(hasher.hash_ids(principal.tenant_id, unknown), unknown, strict=True))
        erased = repository.rows_for_ids(session, dataset_id=dataset_id, sample_ids=list(hashed))
        unknown = [sid for sid in unknown if sid not in {hashed[h] for h in erased}]
        if unknown:
            raise Unprocessable(f"unknown sample ids: {quote_ids(unknown)}", unknown_ids=unknown)
        claims = [{"sample_id": hashed[h], "deletion_id": None, "state": "erased"} for h in erased]
        raise conflict_problem(claims)

    erasure_id = str(uuid.uuid4())
    now = utcnow()
    erasure = DatasetErasure(
        id=erasure_id,
        tenant_id=principal.tenant_id,
        dataset_id=dataset_id,
        sample_ids=hasher.hash_ids(principal.tenant_id, ids),
        sample_ids_sha256=commit_sample_ids(ids, hasher.request_salt(erasure_id)),
        row_indexes=sorted(rows.values()),
        method=body.method,
        reason=body.reason,
        requester=principal.key_id,
        created_at=now,
    )
    session.add(erasure)
    session.flush()
    children: list[tuple[str, str, str]] = []
    try:
        for model_id in sorted(m for m, status in models if status == "ready"):
            child = _fan_out(session, principal=principal, erasure=erasure, model_id=model_id, ids=ids, rows=rows)
            if child is not None:
                children.append(child)
    except IntegrityError:  # another request claimed some of the rows between the check and the insert
        session.rollback()
        raise Conflict("some of these rows were claimed by another request at the same time; retry") from None
    if not children:  # nothing left to delete from any model: the compaction can erase the rows now
        repository.mark_compaction_due(session, dataset_id=dataset_id, at=now)
    audit(
        session,
        actor=principal.key_id,
        event_type="erasure.requested",
        tenant_id=principal.tenant_id,
        refs={"erasure_id": erasure_id, "dataset_id": dataset_id},
        evidence={
            "sample_count": len(ids),
            "method": body.method,
            "sample_ids_sha256": erasure.sample_ids_sha256,
            "deletions": len(children),
        },
    )
    return erasure, children


def _fan_out(
    session: Session, *, principal: Principal, erasure: DatasetErasure, model_id: str, ids: list[str], rows: dict
) -> tuple[str, str, str] | None:
    """One deletion request for the rows the model still carries unclaimed, or None when there are none."""
    _, claims = deletions_repository.rows_and_claims(
        session, dataset_id=erasure.dataset_id, model_id=model_id, sample_ids=ids
    )
    claimed = {c["sample_id"] for c in claims}
    wanted = [sid for sid in ids if sid not in claimed]
    if not wanted:
        return None
    hasher = get_id_hasher()
    request_id = str(uuid.uuid4())
    job_id = deletion_job_id(request_id)
    hashed = hasher.hash_ids(principal.tenant_id, wanted)
    commitment = commit_sample_ids(wanted, hasher.request_salt(request_id))
    values = dict(
        id=request_id,
        job_id=job_id,
        tenant_id=principal.tenant_id,
        model_id=model_id,
        sample_ids=hashed,
        sample_ids_sha256=commitment,
        reason=erasure.reason,
        method=erasure.method,
        status="queued",
        progress=0.0,
        attempts=0,
        requester=principal.key_id,
        created_at=erasure.created_at,
    )
    deletions_repository.insert_request(
        session, values=values, rows={h: rows[sid] for sid, h in zip(wanted, hashed, strict=True)}
    )
    session.add(ErasureDeletion(erasure_id=erasure.id, request_id=request_id))
    audit(
        session,
        actor=principal.key_id,
        event_type="deletion.requested",
        tenant_id=principal.tenant_id,
        refs={"request_id": request_id, "model_id": model_id, "erasure_id": erasure.id},
        evidence={"sample_count": len(wanted), "method": erasure.method, "sample_ids_sha256": commitment},
    )
    return request_id, model_id, job_id


def get_erasure(session: Session, *, principal: Principal, erasure_id: str) -> DatasetErasure:
    erasure = session.scalar(
        select(DatasetErasure).where(DatasetErasure.id == erasure_id, DatasetErasure.tenant_id == principal.tenant_id)
    )
    if erasure is None:
        raise NotFound(f"erasure {erasure_id} not found")
    return erasure


def _status(
    erasure: DatasetErasure, deletions: Sequence[DeletionRequest], carried: dict[str, int]
) -> tuple[str, str, str | None]:
    """(status, stage, error) of an erasure from its deletions and the rows the models still carry unclaimed."""
    if erasure.finished_at is not None:
        return "succeeded", "erased", None
    failed = [d for d in deletions if d.status == "failed"]
    if failed:
        first = failed[0]
        return "failed", "deleting", f"deletion {first.id} from model {first.model_id} failed: {first.error}"
    if carried:
        model_id, count = sorted(carried.items())[0]
        return "failed", "deleting", f"model {model_id} still carries {count} of the rows with no deletion pending"
    if any(d.status != "succeeded" for d in deletions):
        return "running", "deleting", None
    return "running", "compacting", None


def erasure_out(session: Session, *, erasure: DatasetErasure) -> ErasureOut:
    deletions = list(
        session.execute(
            select(DeletionRequest)
            .join(ErasureDeletion, ErasureDeletion.request_id == DeletionRequest.id)
            .where(ErasureDeletion.erasure_id == erasure.id)
            .order_by(DeletionRequest.model_id)
        ).scalars()
    )
    rows = list(erasure.row_indexes)
    erased = repository.erased_count(session, dataset_id=erasure.dataset_id, row_indexes=rows)
    carried: dict[str, int] = {}
    if erasure.finished_at is None and erased < len(rows):
        carried = _carried_unclaimed(session, dataset_id=erasure.dataset_id, row_indexes=rows)
    status, stage, error = _status(erasure, deletions, carried)
    due: datetime | None = session.scalar(select(Dataset.compact_after).where(Dataset.id == erasure.dataset_id))
    return ErasureOut(
        id=erasure.id,
        dataset_id=erasure.dataset_id,
        status=status,
        stage=stage,
        error=error,
        progress=round(erased / len(rows), 4) if rows else 1.0,
        sample_count=len(erasure.sample_ids or []),
        rows_erased=erased,
        sample_ids_sha256=erasure.sample_ids_sha256,
        commitment_salt=get_id_hasher().request_salt(erasure.id).hex(),
        method=erasure.method,
        reason=erasure.reason,
        deletions=[
            ErasureDeletionOut(
                id=d.id, model_id=d.model_id, status=d.status, result_version=d.result_version, error=d.error
            )
            for d in deletions
        ],
        compaction_due_at=due if status == "running" else None,
        created_at=erasure.created_at,
        finished_at=erasure.finished_at,
    )


def _carried_unclaimed(session: Session, *, dataset_id: str, row_indexes: list[int]) -> dict[str, int]:
    """Ready models of the data set -> how many of the rows they carry with no tombstone (pending or deleted)."""
    ready = list(session.execute(select(Model.id).where(Model.dataset_id == dataset_id, Model.status == "ready")))
    out: dict[str, int] = {}
    live = set(row_indexes) - set(repository.erased_rows(session, dataset_id=dataset_id, row_indexes=row_indexes))
    for (model_id,) in ready:
        claimed: set[int] = set()
        for start in range(0, len(row_indexes), repository.LOOKUP_CHUNK):
            chunk = row_indexes[start : start + repository.LOOKUP_CHUNK]
            claimed.update(
                session.execute(
                    select(Tombstone.row_index).where(Tombstone.model_id == model_id, Tombstone.row_index.in_(chunk))
                ).scalars()
            )
        if live - claimed:
            out[model_id] = len(live - claimed)
    return out
