"""Audit endpoints: the log, its signed tree head (JSON, and a C2SP checkpoint for witnesses), inclusion and
consistency proofs, the public key, and deletion receipts. Every document they return can be checked offline with
``python -m unlearn_client.verify``.

Tenants see their own entries; admins of the default tenant see every entry (and can verify the whole log).
Tree heads and proofs cover the whole log: they reveal hashes only. When the stored log fails an integrity check
(app.audit.tree), the endpoints that sign or prove answer 503 with an ``audit-log-integrity`` problem.
"""

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.orm import Session

from app.audit import checkpoint, outbox, repository, tree
from app.audit.canonical import entry_document
from app.audit.schemas import AuditEntryOut
from app.audit.service import deletion_receipt
from app.audit.signing import Signer, log_signer
from app.core.deps import DB, Reader, Requester
from app.core.errors import NotFound, Unprocessable, problem_responses
from app.core.pagination import DEFAULT_LIMIT, MAX_CURSOR_CHARS, Page, PageParams
from app.core.security import Principal

# Signed documents are rendered by json.dumps (response_class=JSONResponse), which writes every number as Python's
# repr, exactly as the canonical form does: a verifier that keeps number text (the web console's) can recompute
# hashes and signatures from the bytes served. FastAPI's default fast path writes floats its own way (1e-5 for 1e-05).
MAX_SEQ = 2**62  # larger sequence numbers or tree sizes are refused with 422, not looked up
router = APIRouter(prefix="/v1", tags=["audit"])
MAX_PAGE = 1000  # entries per page of GET /v1/audit
_signer_lock = threading.Lock()


def init_signer(app: FastAPI) -> Signer:
    """Load (or generate) the log's signing key from Settings.audit_signing_key_path, with the log's origin,
    checkpoint file and legacy entries as configured; call at start-up."""
    state = app.state
    signer = getattr(state, "audit_signer", None)
    if signer is None:
        with _signer_lock:
            signer = getattr(state, "audit_signer", None)
            if signer is None:
                signer = state.audit_signer = log_signer(state.settings)
    return signer


def get_signer(request: Request) -> Signer:
    """The log's signer (loaded on first use when start-up did not call init_signer)."""
    return init_signer(request.app)


SignerDep = Annotated[Signer, Depends(get_signer)]


def current_log(db: DB, signer: SignerDep) -> Session:
    """The request's session once the events waiting in the outbox are chained (and committed), so that what
    the endpoint reads includes every event committed before the request."""
    if outbox.pending(db):
        outbox.sequence(db, signer.public_key)
        db.commit()  # also when every pending event was refused: the append lock is not held past this point
    return db


LogDB = Annotated[Session, Depends(current_log)]


def _visible_tenant(principal: Principal) -> str | None:
    return None if principal.is_platform_admin else principal.tenant_id


def _check_size(size: int, current: int, name: str) -> None:
    if size > current:
        raise Unprocessable(f"{name}={size} is past the end of the log, which holds {current} entries")


def audit_page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="entries per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_CHARS, description="next_cursor of the previous page")
    ] = None,
) -> PageParams:
    """The list convention, with larger pages allowed: whoever verifies a whole log reads every entry."""
    return PageParams(limit=limit, cursor=cursor)


@router.get("/audit", response_model=Page[AuditEntryOut], response_class=JSONResponse)
def list_audit_entries(
    db: LogDB,
    principal: Reader,
    paging: Annotated[PageParams, Depends(audit_page_params)],
    model_id: Annotated[str | None, Query(max_length=36, description="only entries about this model")] = None,
    deletion_id: Annotated[str | None, Query(max_length=36, description="only entries about this deletion")] = None,
) -> dict[str, Any]:
    """Audit entries, oldest first (in sequence order): the caller's tenant's, or every entry for platform
    admins."""
    entries, cursor = repository.list_entries(
        db, tenant_id=_visible_tenant(principal), model_id=model_id, deletion_id=deletion_id, params=paging
    )
    return {"items": [entry_document(e) for e in entries], "next_cursor": cursor, "limit": paging.limit}


@router.get("/audit/public-key")
def get_public_key(signer: SignerDep) -> dict[str, str]:
    """The Ed25519 public key that signs entries, tree heads, checkpoints and receipts (PEM and raw base64), its
    key id, the log's checkpoint origin and the key as a signed-note verifier key."""
    return signer.public_key_document() | {
        "origin": signer.note_origin,
        "note_verifier_key": checkpoint.verifier_key(signer.note_origin, signer.public_key),
    }


@router.get("/audit/tree-head", response_class=JSONResponse)
def get_tree_head(
    db: LogDB, _principal: Reader, signer: SignerDep, size: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None
) -> dict[str, Any]:
    """The signed tree head of the whole log (or of its first `size` entries)."""
    current = tree.tree_size(db, signer)
    if size is not None:
        _check_size(size, current, "size")
    return tree.signed_tree_head(db, signer, current if size is None else size)


@router.get(
    "/audit/checkpoint",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "A C2SP tlog-checkpoint signed note"}},
)
def get_checkpoint(db: DB, signer: SignerDep) -> PlainTextResponse:
    """The signed tree head of the log as chained now, as a C2SP checkpoint (c2sp.org/tlog-checkpoint), for
    witnesses and monitors to poll. Public, like the key: it reveals a size and a hash; it does not chain the
    outbox first (events recorded a moment ago appear in the next checkpoint)."""
    note = tree.signed_checkpoint(db, signer)
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store"})


@router.get("/audit/consistency", response_class=JSONResponse)
def get_consistency(
    db: LogDB,
    _principal: Reader,
    signer: SignerDep,
    first: Annotated[int, Query(alias="from", ge=0, le=MAX_SEQ)],
    second: Annotated[int | None, Query(alias="to", ge=0)] = None,
) -> dict[str, Any]:
    """Proof that the log of `from` entries is a prefix of the log of `to` entries (default: now)."""
    current = tree.tree_size(db, signer)
    second = current if second is None else second
    _check_size(second, current, "to")
    if first > second:
        raise Unprocessable(f"from={first} is larger than to={second}")
    proof = tree.consistency_proof(db, signer, first=first, second=second)
    return proof | {"tree_head": tree.signed_tree_head(db, signer, second)}


@router.get("/audit/{seq}", response_class=JSONResponse, responses=problem_responses(404))
def get_audit_entry(
    db: LogDB, principal: Reader, signer: SignerDep, seq: Annotated[int, Path(ge=1, le=MAX_SEQ)]
) -> dict[str, Any]:
    """One entry, its inclusion proof, and the signed tree head the proof leads to."""
    entry = repository.get_entry(db, seq=seq)
    visible = _visible_tenant(principal)
    if entry is None or (visible is not None and entry.tenant_id != visible):
        raise NotFound(f"audit entry {seq} not found")
    size = tree.tree_size(db, signer)
    proof = tree.inclusion_proof(db, signer, seq=seq, size=size)
    document = entry_document(entry)
    tree.check_served(db, signer, [document])
    return {"entry": document, "inclusion_proof": proof, "tree_head": tree.signed_tree_head(db, signer, size)}


@router.get("/deletions/{deletion_id}/receipt", response_class=JSONResponse, responses=problem_responses(404))
def get_receipt(db: LogDB, principal: Requester, signer: SignerDep, deletion_id: str) -> dict[str, Any]:
    """The signed receipt of a deletion request: request, versions, evidence, audit entries with proofs."""
    body = deletion_receipt(db, deletion_id=deletion_id, tenant_id=_visible_tenant(principal), signer=signer)
    if body is None:
        raise NotFound(f"deletion request {deletion_id} not found")
    return body
