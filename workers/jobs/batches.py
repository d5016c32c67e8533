"""Which waiting requests of a model one update takes (the deletion job calls this under the model's lock).

Oldest first. The first eligible request decides the kind of update:

- `iau` requests are coalesced with the ones after them while they share method and purpose (the approximate
  update is additive over forgotten rows, and its target depends on the purpose), up to
  Settings.max_coalesce (0: no cap), stopping at the first request of another kind;
- requests escalated after their update missed its target (workers/jobs/escalate.py) are gathered from the whole
  queue, all of them in one exact retrain;
- a `retrain` request is applied alone;
- a request waiting to retry after a failed attempt (stage `retry_wait`) is applied alone, only by its own retry
  job, so one bad request cannot fail the others twice and backoff is respected;
- a request left `running` after `max_attempts` attempts is failed for good.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.core.config import get_settings
from app.core.db import session_scope
from app.deletions.orm import DeletionRequest
from workers.publish import fail_requests

RETRY_WAIT = "retry_wait"  # stage of a queued request waiting for its retry job


@dataclass
class Batch:
    request_ids: list[str]
    method: str  # iau | retrain
    purpose: str = "privacy"  # privacy | poison: the target of an iau update
    escalated: bool = False  # the exact retrain owed to requests whose iau update missed its target


def _kind(r: DeletionRequest) -> tuple[str, ...]:
    """Requests of one kind may share an update."""
    if r.escalated_at is not None:
        return ("escalated",)
    return (r.method, r.purpose or "privacy")


def next_batch(model_id: str, job_id: str | None) -> Batch | None:
    """Under the lock: the next update to apply, failing requests that ran out of attempts."""
    settings = get_settings()
    max_attempts = settings.max_attempts
    with session_scope() as session:
        waiting = list(
            session.execute(
                select(DeletionRequest)
                .where(DeletionRequest.model_id == model_id, DeletionRequest.status.in_(("queued", "running")))
                .order_by(DeletionRequest.created_at, DeletionRequest.id)
            ).scalars()
        )
    exhausted = {
        r.id: f"gave up after {r.attempts} attempts; last: {r.error or 'the worker stopped during the update'}"
        for r in waiting
        if r.status == "running" and r.attempts >= max_attempts
    }
    if exhausted:
        fail_requests(model_id=model_id, reasons=exhausted)
    batch: list[DeletionRequest] = []
    for r in waiting:
        if r.id in exhausted:
            continue
        retry = r.status == "queued" and r.stage == RETRY_WAIT
        if retry and r.job_id != job_id:
            continue  # waits for its own retry job
        alone = retry or (r.method == "retrain" and r.escalated_at is None)
        if not batch:
            batch.append(r)
            if alone:
                break
        elif _kind(batch[0]) == ("escalated",):
            if _kind(r) == ("escalated",) and not alone:
                batch.append(r)  # every escalation waiting for the model goes into one retrain
        elif alone or _kind(r) != _kind(batch[0]) or (settings.max_coalesce and len(batch) >= settings.max_coalesce):
            break
        else:
            batch.append(r)
    if not batch:
        return None
    first = batch[0]
    escalated = first.escalated_at is not None
    return Batch(
        request_ids=[r.id for r in batch],
        method="retrain" if escalated else first.method,
        purpose=first.purpose or "privacy",
        escalated=escalated,
    )
