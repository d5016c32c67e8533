"""Deletion request endpoints: create (202 + Location), poll status, and list (per model and per tenant)."""

import json
from datetime import datetime
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from app.core.deps import DB, Requester, after_commit_enqueue, authenticate, bearer, check_role
from app.core.errors import COMMON_ERRORS, problem_responses
from app.core.idhash import get_id_hasher
from app.core.metrics import DELETIONS_ACCEPTED
from app.core.pagination import Page, Paging
from app.deletions import service
from app.deletions.schemas import DeletionCreate, DeletionOut
from app.keys.idempotency import Created, run_create

router = APIRouter(prefix="/v1", tags=["deletions"], responses=COMMON_ERRORS)


# Authenticated inside the handler (one thread hand-off for the whole request); `bearer` declares the scheme.
@router.post(
    "/models/{model_id}/deletions",
    status_code=202,
    response_model=DeletionOut,
    dependencies=[Depends(bearer)],
    responses=problem_responses(409),
)
async def create_deletion(
    model_id: str,
    body: DeletionCreate,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Ask for training rows to be removed from a model. The request is recorded, then queued.

    The hot path of the service: authentication, validation, the INSERTs and the commit run in one hand-off to
    the thread pool, on one session, at most UNLEARN_DELETION_THREADS at a time per process; the job is enqueued
    after the commit by the queue's background sender.
    """
    state = request.app.state
    limiter = getattr(state, "deletion_limiter", None)
    if limiter is None:
        limiter = state.deletion_limiter = anyio.CapacityLimiter(state.settings.deletion_threads)
    return await anyio.to_thread.run_sync(_create_deletion, request, model_id, body, idempotency_key, limiter=limiter)


def _create_deletion(request: Request, model_id: str, body: DeletionCreate, idempotency_key: str | None):
    state = request.app.state
    jobs, settings = state.jobs, state.settings
    with state.sessionmaker() as db:
        principal = check_role(authenticate(request, db), "requester")
        jobs.require()  # 503 + Retry-After before anything is written when Redis does not answer

        def work() -> Created:
            deletion = service.create_deletion(
                db,
                principal=principal,
                model_id=model_id,
                body=body,
                max_ids=settings.max_ids_per_request,
                idempotency_key=idempotency_key,
            )
            out = service.deletion_out(deletion).model_dump(mode="json")
            replay = {**out, "commitment_salt": None}  # the salt is never stored; with_salt puts it back

            def enqueue() -> None:
                DELETIONS_ACCEPTED.inc()
                ids = (deletion.id, deletion.model_id, deletion.job_id)
                after_commit_enqueue(jobs.enqueue_deletion, *ids, event="deletion.enqueue_failed")

            location = {"Location": f"/v1/deletions/{deletion.id}"}
            return Created(202, out, location, after_commit=enqueue, replay_body=replay)

        response = run_create(
            db,
            tenant_id=principal.tenant_id,
            idempotency_key=idempotency_key,
            scope=f"POST {request.url.path}",
            fp=get_id_hasher().fingerprint(principal.tenant_id, _fingerprinted(body)),
            settings=settings,
            work=work,
        )
        return with_salt(response) if response.headers.get("Idempotent-Replayed") else response


def with_salt(response: JSONResponse) -> JSONResponse:
    """A replayed response (deletion or erasure) with its commitment salt put back (derived, never stored)."""
    body = json.loads(response.body)
    body["commitment_salt"] = service.commitment_salt(body["id"], body.get("sample_ids_sha256"))
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
    return JSONResponse(body, status_code=response.status_code, headers=headers)


def _fingerprinted(body: DeletionCreate) -> dict:
    """The body as its Idempotency-Key fingerprint sees it: the default purpose left out, so that a request and
    its retry compare equal whether or not they name it (and across the release that added it)."""
    fields = body.model_dump(mode="json")
    if fields.get("purpose") == "privacy":
        del fields["purpose"]
    return fields


Status = Annotated[
    Literal["queued", "running", "succeeded", "failed"] | None, Query(description="only deletions in this status")
]
Since = Annotated[datetime | None, Query(description="created at or after this time (ISO 8601; UTC when no zone)")]
Until = Annotated[datetime | None, Query(description="created before this time (ISO 8601; UTC when no zone)")]


@router.get("/deletions", response_model=Page[DeletionOut])
def list_deletions(
    db: DB,
    principal: Requester,
    paging: Paging,
    status: Status = None,
    since: Since = None,
    until: Until = None,
    model_id: Annotated[str | None, Query(max_length=36, description="only this model's deletions")] = None,
) -> Page[DeletionOut]:
    """The tenant's deletion requests, newest first, filtered by status, creation time and model."""
    return service.list_deletions(
        db, principal=principal, model_id=model_id, status=status, since=since, until=until, params=paging
    )


@router.get("/models/{model_id}/deletions", response_model=Page[DeletionOut])
def list_model_deletions(
    model_id: str,
    db: DB,
    principal: Requester,
    paging: Paging,
    status: Status = None,
    since: Since = None,
    until: Until = None,
) -> Page[DeletionOut]:
    """One model's deletion requests, newest first, filtered by status and creation time."""
    return service.list_deletions(
        db, principal=principal, model_id=model_id, status=status, since=since, until=until, params=paging
    )


@router.get("/deletions/{deletion_id}", response_model=DeletionOut)
def get_deletion(deletion_id: str, db: DB, principal: Requester) -> DeletionOut:
    """Status of a deletion request: stage, progress, versions, evidence, error."""
    return service.deletion_out(service.get_deletion(db, principal=principal, deletion_id=deletion_id))
