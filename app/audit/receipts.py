"""Deletion receipts from the database: the request, its versions and its audit entries, proved and signed."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import repository, tree
from app.audit.receipt import build_receipt
from app.audit.service import entry_document
from app.audit.signing import Signer
from app.core.db import utcnow
from app.deletions.orm import DeletionRequest
from app.models.orm import ModelVersion

_REQUEST_COLUMNS = (
    "id",
    "model_id",
    "tenant_id",
    "status",
    "method",
    "reason",
    "requester",
    "error",
    "sample_ids",
    "evidence",
    "created_at",
    "started_at",
    "finished_at",
)


def _version(session: Session, model_id: str, version: int | None) -> dict[str, Any] | None:
    if version is None:
        return None
    row = session.scalars(
        select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == version)
    ).first()
    if row is None:
        return {"version": version}
    return {c: getattr(row, c) for c in ("version", "parent_version", "checkpoint_sha256", "checkpoint_size")} | {
        "state": row.state,
        "created_at": row.created_at,
    }


def deletion_receipt(
    session: Session, *, request_id: str, tenant_id: str | None, signer: Signer
) -> dict[str, Any] | None:
    """The signed receipt of a deletion request, or None when no such request is visible to ``tenant_id``
    (None: every tenant). Inclusion proofs are against the signed head of the whole log as it is now."""
    request = session.get(DeletionRequest, request_id)
    if request is None or (tenant_id is not None and request.tenant_id != tenant_id):
        return None
    size = tree.tree_size(session)
    versions = {request.base_version, request.result_version} - {None}
    audit = []
    for entry in repository.entries_for_request(session, request_id=request.id, model_id=request.model_id):
        if entry.seq > size:
            break
        if entry.request_id != request.id and (entry.refs or {}).get("version") not in versions:
            continue
        audit.append(
            {"entry": entry_document(entry), "inclusion_proof": tree.inclusion_proof(session, seq=entry.seq, size=size)}
        )
    return build_receipt(
        request={c: getattr(request, c) for c in _REQUEST_COLUMNS},
        base_version=_version(session, request.model_id, request.base_version),
        result_version=_version(session, request.model_id, request.result_version),
        audit=audit,
        tree_head=tree.signed_tree_head(session, signer, size),
        signer=signer,
        issued_at=utcnow(),
    )
