"""Deletion requests: validate the ids against the model's data set, claim the rows (pending tombstones),
record the request. The caller commits, then enqueues the job.

The request and its tombstones store keyed hashes of the sample ids (app.core.idhash), never the ids; the audit
log and the responses name them by a commitment salted with the request's own salt (app.audit.commitments).
An id whose row was erased from the data set by compaction is recognised by its keyed hash: 409, as for any
row already deleted.
"""

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.commitments import commit_sample_ids
from app.core.audit_hook import audit
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.idhash import IdHasher, get_id_hasher
from app.core.logging import log_event
from app.core.pagination import Page, PageParams
from app.core.security import Principal
from app.deletions import repository
from app.deletions.orm import DeletionRequest
from app.deletions.schemas import DeletionCreate, DeletionOut

log = logging.getLogger("app.deletions")
MAX_NAMED_IN_DETAIL = 20  # ids quoted in a problem's detail text (the full list is in its members)


def deletion_job_id(request_id: str) -> str:
    """The RQ job id of a deletion request's first enqueue (the format of workers.queue.new_deletion_job_id)."""
    return f"del-{request_id}-{uuid.uuid4().hex[:8]}"


def dedupe(ids: list[str]) -> list[str]:
    """Duplicates removed, first occurrence kept (the documented policy)."""
    return list(dict.fromkeys(ids))


def ids_commitment(ids: list[str], salt: bytes) -> str:
    """Salted commitment naming the set of ids in the audit log without listing them."""
    return commit_sample_ids(ids, salt)


def quote_ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_NAMED_IN_DETAIL])
    return shown + (f" and {len(ids) - MAX_NAMED_IN_DETAIL} more" if len(ids) > MAX_NAMED_IN_DETAIL else "")


def conflict_problem(claimed: list[dict[str, Any]]) -> Conflict | None:
    if not claimed:
        return None
    conflicts = sorted(claimed, key=lambda c: c["sample_id"])
    deletion_ids = sorted({c["deletion_id"] for c in conflicts if c["deletion_id"] is not None})
    covered = f" (covered by deletion {', '.join(deletion_ids[:MAX_NAMED_IN_DETAIL])})" if deletion_ids else ""
    return Conflict(
        f"sample ids already deleted, erased or pending in another request: "
        f"{quote_ids([c['sample_id'] for c in conflicts])}{covered}",
        conflicts=conflicts,
        deletion_ids=deletion_ids,
    )


def erased_claims(
    session: Session, *, hasher: IdHasher, tenant_id: str, dataset_id: str, model_id: str, sample_ids: list[str]
) -> list[dict[str, Any]]:
    """Claims for the ids among ``sample_ids`` whose rows compaction erased from the data set (found by keyed
    hash): state ``erased``, with the model's request that deleted the row when there is one."""
    if not sample_ids:
        return []
    by_hash = dict(zip(hasher.hash_ids(tenant_id, sample_ids), sample_ids, strict=True))
    rows, claims = repository.rows_and_claims(
        session, dataset_id=dataset_id, model_id=model_id, sample_ids=list(by_hash)
    )
    deletion_of = {c["sample_id"]: c["deletion_id"] for c in claims}
    return [{"sample_id": by_hash[h], "deletion_id": deletion_of.get(h), "state": "erased"} for h in rows]


def create_deletion(
    session: Session,
    *,
    principal: Principal,
    model_id: str,
    body: DeletionCreate,
    max_ids: int,
    idempotency_key: str | None = None,
) -> DeletionRequest:
    """Validate and record a deletion request (flushes, never commits): one read (the model, the requested rows
    and their tombstones), three INSERTs (request, tombstones, audit outbox). Returns the request as an unattached
    row."""
    ids = dedupe(body.sample_ids)
    if not ids:
        raise Unprocessable("sample_ids must name at least one sample")
    if len(ids) > max_ids:
        raise Unprocessable(f"at most {max_ids} sample ids per request, got {len(ids)}", limit=max_ids)
    model = repository.model_rows_and_claims(session, model_id=model_id, tenant_id=principal.tenant_id, sample_ids=ids)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    status, dataset_id, found, claimed = model
    if status != "ready":
        raise Conflict(f"model {model_id} is {status}; deletions need a ready model", model_status=status)
    hasher = get_id_hasher()
    unknown = [sid for sid in ids if sid not in found]
    if unknown:
        erased = erased_claims(
            session,
            hasher=hasher,
            tenant_id=principal.tenant_id,
            dataset_id=dataset_id,
            model_id=model_id,
            sample_ids=unknown,
        )
        erased_ids = {c["sample_id"] for c in erased}
        unknown = [sid for sid in unknown if sid not in erased_ids]
        if unknown:
            raise Unprocessable(f"unknown sample ids: {quote_ids(unknown)}", unknown_ids=unknown)
        claimed = [*claimed, *erased]
    if conflict := conflict_problem(claimed):
        raise conflict
    hashed = hasher.hash_ids(principal.tenant_id, ids)
    rows = {h: found[sid] for sid, h in zip(ids, hashed, strict=True)}
    request_id = str(uuid.uuid4())
    commitment = ids_commitment(ids, hasher.request_salt(request_id))
    values = dict(
        id=request_id,
        job_id=deletion_job_id(request_id),  # stored with the INSERT; the router enqueues under it after commit
        tenant_id=principal.tenant_id,
        model_id=model_id,
        sample_ids=hashed,
        sample_ids_sha256=commitment,
        reason=body.reason,
        method=body.method,
        purpose=body.purpose,
        status="queued",
        progress=0.0,
        attempts=0,
        requester=principal.key_id,
        idempotency_key=idempotency_key,
        created_at=utcnow(),
    )
    try:
        repository.insert_request(session, values=values, rows=rows)
    except IntegrityError:
        # Another request claimed some of these rows between the check and the insert.
        session.rollback()
        _, claimed = repository.rows_and_claims(session, dataset_id=dataset_id, model_id=model_id, sample_ids=ids)
        raise conflict_problem(claimed) or Conflict("rows were claimed concurrently") from None
    audit(
        session,
        actor=principal.key_id,
        event_type="deletion.requested",
        tenant_id=principal.tenant_id,
        refs={"request_id": request_id, "model_id": model_id},
        evidence={
            "sample_count": len(ids),
            "method": body.method,
            "purpose": body.purpose,
            "sample_ids_sha256": commitment,
        },
    )
    log_event(log, "deletion.requested", deletion_id=request_id, model_id=model_id, sample_count=len(ids))
    return DeletionRequest(**values)


def get_deletion(session: Session, *, principal: Principal, deletion_id: str) -> DeletionRequest:
    request = repository.get_request(session, deletion_id=deletion_id, tenant_id=principal.tenant_id)
    if request is None:
        raise NotFound(f"deletion request {deletion_id} not found")
    return request


def commitment_salt(request_id: str, commitment: str | None) -> str | None:
    """The hex salt that opens a request's commitments (None for requests made before salted commitments)."""
    return get_id_hasher().request_salt(request_id).hex() if commitment else None


def _utc(value: datetime | None) -> datetime | None:
    """A filter time in UTC; one without a zone is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def list_deletions(
    session: Session,
    *,
    principal: Principal,
    model_id: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    params: PageParams,
) -> Page[DeletionOut]:
    """The tenant's deletion requests, newest first; 404 for a model the tenant does not have."""
    if model_id is not None and not repository.model_exists(session, model_id=model_id, tenant_id=principal.tenant_id):
        raise NotFound(f"model {model_id} not found")
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise Unprocessable(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    rows, cursor = repository.list_requests(
        session,
        tenant_id=principal.tenant_id,
        model_id=model_id,
        status=status,
        since=since,
        until=until,
        params=params,
    )
    return Page[DeletionOut](items=[deletion_out(r) for r in rows], next_cursor=cursor, limit=params.limit)


def deletion_out(request: DeletionRequest) -> DeletionOut:
    return DeletionOut(
        id=request.id,
        model_id=request.model_id,
        status=request.status,
        stage=request.stage,
        progress=request.progress,
        base_version=request.base_version,
        result_version=request.result_version,
        evidence=request.evidence,
        error=request.error,
        created_at=request.created_at,
        started_at=request.started_at,
        finished_at=request.finished_at,
        method=request.method,
        purpose=request.purpose or "privacy",
        reason=request.reason,
        sample_count=len(request.sample_ids or []),
        attempts=request.attempts,
        outcome=(request.evidence or {}).get("outcome"),
        removed_by=request.removed_by,
        exact_as_of_version=request.exact_as_of_version,
        sample_ids_sha256=request.sample_ids_sha256,
        commitment_salt=commitment_salt(request.id, request.sample_ids_sha256),
    )
