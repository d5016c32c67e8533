"""Apply deletion requests to a model: lock, coalesce, unlearn, publish, purge (docs/engine.md, docs/api.md).

One job is enqueued per deletion request, but whichever job holds the model's lock applies everything that is
waiting for that model, oldest first, one update at a time (workers/jobs/batches.py says which requests share an
update: coalesced `iau` requests of one purpose, every escalated request in one exact retrain, a `retrain` or a
retry alone). A request left `running` by a worker that died is taken over (the lock being free proves nobody
works on it). An `iau` update whose verdict missed its target is handed to workers/jobs/escalate.py instead of
being published; after a job published anything, a consolidation is queued if the model is due.

A job whose request was taken over by the lock holder stops waiting and does nothing.
"""

from __future__ import annotations

import contextlib
import time

import torch
from sqlalchemy import func, select, update

from app.core.config import get_settings
from app.core.db import session_scope, utcnow
from app.core.metrics import observe_phase, record_failures, record_update
from app.deletions.orm import DeletionRequest
from app.models.orm import Model, ModelVersion
from workers.datastore import TrainingData, live_mask, load_dataset, request_rows
from workers.jobs import escalate
from workers.jobs.batches import RETRY_WAIT, Batch, next_batch
from workers.jobs.common import PermanentError, audit_many, current_job_id, event, phase, short_error, write_checkpoint
from workers.jobs.updates import request_evidence, run_update
from workers.locks import LockUnavailable, model_lock
from workers.publish import Outcome, delete_blob_if_unused, fail_requests, model_exists, publish_version

RETRY_BACKOFF_S = (2.0, 10.0, 60.0, 300.0)  # delay before retry k (1-based); the last value repeats
MAX_ROUNDS = 50  # updates one job applies before leaving the rest to the jobs queued behind it
PROGRESS_EVERY_S = 0.5  # least seconds between two progress writes
ESCALATED = 0  # what _apply_batch returns when the update missed its target and a retrain is owed instead


def retry_delay(attempt: int) -> float:
    return RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S)) - 1]


def apply_deletions(model_id: str, request_id: str | None = None) -> dict:
    """RQ job: apply what is waiting for `model_id`. `request_id` is the request this job was enqueued for."""
    job_id = current_job_id()

    def taken_over() -> bool:
        if request_id is None:
            return False
        with session_scope() as session:
            request = session.get(DeletionRequest, request_id)
            if request is None or request.status != "queued":
                return True
            return request.stage == RETRY_WAIT and request.job_id != job_id

    if request_id is not None and _settled(request_id):
        return {"model_id": model_id, "versions": []}  # applied (or failed) with an earlier, coalesced update
    applied: list[int] = []
    try:
        with model_lock(model_id, give_up=taken_over):
            for _ in range(MAX_ROUNDS):
                batch = next_batch(model_id, job_id)
                if batch is None:
                    break
                version = _apply_batch(model_id, batch, job_id)
                if version is None:
                    break  # a failed attempt: the jobs queued behind this one carry on
                if version != ESCALATED:
                    applied.append(version)
    except LockUnavailable:
        event("deletion.taken_over", model_id=model_id, deletion_id=request_id)
    if applied:
        from workers.jobs.consolidate import enqueue_if_due

        enqueue_if_due(model_id)
    return {"model_id": model_id, "versions": applied}


def _settled(request_id: str) -> bool:
    """The request succeeded or failed for good: its job has nothing left to do (every request still waiting
    has a job of its own)."""
    with session_scope() as session:
        status = session.scalar(select(DeletionRequest.status).where(DeletionRequest.id == request_id))
    return status in ("succeeded", "failed")


def _apply_batch(model_id: str, batch: Batch, job_id: str | None) -> int | None:
    """One update. Returns the published version, ESCALATED when the update missed its target and its requests
    now wait for an exact retrain, or None when the attempt failed."""
    settings = get_settings()
    attempts = _mark_running(model_id, batch, job_id)
    try:
        new_version = _run_and_publish(model_id, batch, job_id)
    except Exception as exc:  # every failure is recorded on the requests
        error = short_error(exc)
        if not model_exists(model_id):  # removed while the update ran: its requests went with it
            event("deletion.model_removed", model_id=model_id, requests=",".join(batch.request_ids), error=error)
            return None
        event("deletion.attempt_failed", model_id=model_id, requests=",".join(batch.request_ids), error=error)
        # A permanent error fails the request for good only when it was applied alone; in a coalesced batch
        # each request is retried by itself, so one bad request does not take the others down.
        permanent = isinstance(exc, PermanentError) and len(batch.request_ids) == 1
        give_up = {
            rid: (error if permanent else f"gave up after {n} attempts; last: {error}")
            for rid, n in attempts.items()
            if permanent or n >= settings.max_attempts
        }
        if give_up:
            fail_requests(model_id=model_id, reasons=give_up)
        retry = [rid for rid in batch.request_ids if rid not in give_up]
        if retry:
            _schedule_retries(model_id, retry, attempts, error)
        return None
    _after_publish(model_id, new_version)
    return new_version


def _after_publish(model_id: str, new_version: int) -> None:
    """Queue the new version's gradient cache refresh (the reconciler queues it if this fails)."""
    from workers.queue import enqueue_cache_refresh

    try:
        enqueue_cache_refresh(model_id, new_version)
    except Exception as exc:  # the reconciler redoes it
        event("cache.enqueue_failed", model_id=model_id, version=new_version, error=short_error(exc))


def _mark_running(model_id: str, batch: Batch, job_id: str | None) -> dict[str, int]:
    """Mark the batch's requests running with one UPDATE and audit the first start of each with one append.

    The ``deletion.started`` evidence names the job and how many requests the update carries; the list of
    requests is recorded once, on the version (``applied_requests``) and its ``version.created`` entry.
    """
    now = utcnow()
    with session_scope() as session:
        model = session.get(Model, model_id)
        before = session.execute(
            select(DeletionRequest.id, DeletionRequest.status, DeletionRequest.started_at).where(
                DeletionRequest.id.in_(batch.request_ids)
            )
        ).all()
        if not before:
            return {}
        values: dict = {
            "status": "running",
            "stage": "loading",
            "progress": 0.0,
            "attempts": DeletionRequest.attempts + 1,
            "base_version": model.latest_version,
            "started_at": func.coalesce(DeletionRequest.started_at, now),
        }
        if job_id:
            values["job_id"] = job_id
        rows = session.execute(
            update(DeletionRequest)
            .where(DeletionRequest.id.in_([r.id for r in before]))
            .values(**values)
            .returning(DeletionRequest.id, DeletionRequest.attempts)
            .execution_options(synchronize_session=False)
        ).all()
        attempts = {rid: n for rid, n in rows}
        started = [r.id for r in before if r.status == "queued" and r.started_at is None]
        audit_many(
            session,
            [
                {
                    "event_type": "deletion.started",
                    "tenant_id": model.tenant_id,
                    "refs": {"request_id": rid, "model_id": model_id, "base_version": model.latest_version},
                    "evidence": {"coalesced_requests": len(batch.request_ids), "job_id": job_id},
                }
                for rid in started
            ],
        )
    return attempts


def _schedule_retries(model_id: str, request_ids: list[str], attempts: dict[str, int], error: str) -> None:
    from workers.queue import enqueue_deletion

    settings = get_settings()
    max_attempts = settings.max_attempts
    with session_scope() as session:
        for r in session.execute(
            select(DeletionRequest).where(DeletionRequest.id.in_(request_ids), DeletionRequest.status == "running")
        ).scalars():
            r.status = "queued"
            r.stage = RETRY_WAIT
            r.progress = 0.0
            r.error = f"attempt {r.attempts} of {max_attempts} failed: {error}"[:500]
    record_failures("deletion", "retry", len(request_ids))
    for rid in request_ids:
        delay = retry_delay(attempts[rid])
        enqueue_deletion(rid, model_id, delay_s=delay)
        event("deletion.retry_scheduled", model_id=model_id, deletion_id=rid, delay_s=delay)


class _Progress:
    """Writes stage and progress of the running requests in short transactions, at most every PROGRESS_EVERY_S."""

    def __init__(self, request_ids: list[str]) -> None:
        self.request_ids = request_ids
        self.last = 0.0

    def stage(self, stage: str, progress: float | None = None, *, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        values: dict = {"stage": stage}
        if progress is not None:
            values["progress"] = round(float(progress), 4)
        with session_scope() as session:
            for r in session.execute(
                select(DeletionRequest).where(
                    DeletionRequest.id.in_(self.request_ids), DeletionRequest.status == "running"
                )
            ).scalars():
                for k, v in values.items():
                    setattr(r, k, v)


def _run_and_publish(model_id: str, batch: Batch, job_id: str | None) -> int:
    """Run the update and commit the new version (purging the superseded one); returns the new version, or
    ESCALATED when nothing was published because an exact retrain is owed instead."""
    progress = _Progress(batch.request_ids)
    load_started = time.perf_counter()
    with session_scope() as session:
        model = session.get(Model, model_id)
        if model is not None and model.status == "training":
            raise RuntimeError(f"model {model_id} is still training; the deletion is retried once it is ready")
        if model is None or model.status != "ready" or model.latest_version is None:
            raise PermanentError(f"model {model_id} is not ready (status {model.status if model else 'missing'})")
        base = session.execute(
            select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == model.latest_version)
        ).scalar_one()
        if base.state != "available":
            raise RuntimeError(f"latest version {base.version} of model {model_id} is not available")
        data: TrainingData = load_dataset(session, model.dataset_id)
        live = live_mask(session, model_id, data.num_rows)
        rows = request_rows(session, model_id, batch.request_ids)
        model_info = {
            "tenant_id": model.tenant_id,
            "architecture": model.architecture,
            "train_recipe": model.train_recipe,
            "unlearn_defaults": dict(model.unlearn_defaults or {}),
        }
        base_info = {
            "version": base.version,
            "checkpoint_sha256": base.checkpoint_sha256,
            "grad_cache_sha256": base.grad_cache_sha256,
            "grad_cache_rows": base.grad_cache_rows,
        }
    empty = [rid for rid, idx in rows.items() if not idx]
    if empty:
        raise PermanentError(f"request(s) {', '.join(empty)} claim no pending rows of model {model_id}")
    forget_idx = torch.tensor(sorted(i for idx in rows.values() for i in idx), dtype=torch.int64)  # (F,)
    if not bool(live[forget_idx].all()):
        raise PermanentError("some requested rows are already deleted from the model")
    observe_phase("deletion", "load", time.perf_counter() - load_started)

    result = run_update(
        method=batch.method,
        model_info=model_info,
        base_info=base_info,
        data=data,
        live=live,
        forget_idx=forget_idx,
        on_stage=progress.stage,
        purpose=batch.purpose,
    )
    for name, seconds in (result.evidence.get("timings_s") or {}).items():
        if name != "total":  # the engine's phases; "total" is their sum
            observe_phase("deletion", name, seconds)
    if batch.method == "iau" and escalate.review(result.evidence, model_info):
        escalate.escalate(model_id=model_id, request_ids=batch.request_ids, evidence=result.evidence, job_id=job_id)
        return ESCALATED
    progress.stage("publishing", 0.95)
    with phase("deletion", "write"):
        sha, size = write_checkpoint(result.state_dict)
    with phase("deletion", "request_evidence"):
        outcomes = [
            Outcome(request_id=rid, evidence=request_evidence(result, data, rid, rows[rid], batch.request_ids))
            for rid in batch.request_ids
        ]
        if batch.escalated:
            missed = escalate.missed_outcomes(batch.request_ids)
            for o in outcomes:
                o.evidence["escalated_from"] = missed.get(o.request_id) or {}
    try:
        with phase("deletion", "publish"):
            new_version = publish_version(
                model_id=model_id,
                base_version=base_info["version"],
                checkpoint_sha256=sha,
                checkpoint_size=size,
                outcomes=outcomes,
                evidence_summary={**result.evidence, "applied_requests": list(batch.request_ids)},
                job_id=job_id,
                removed_by="retrain_escalated" if batch.escalated else batch.method,
                exact_trigger=("escalation" if batch.escalated else "retrain") if batch.method == "retrain" else None,
            )
    except BaseException:
        with contextlib.suppress(Exception):  # nothing was published: drop the unreferenced blob if we can
            delete_blob_if_unused(sha)
        raise
    event(
        "deletion.applied",
        model_id=model_id,
        version=new_version,
        method=batch.method,
        requests=len(batch.request_ids),
        rows=int(forget_idx.numel()),
        checkpoint_sha256=sha,
    )
    record_update(
        model_id=model_id,
        method=batch.method,
        requests=len(batch.request_ids),
        rows=int(forget_idx.numel()),
        membership_auc=(result.evidence.get("after") or {}).get("membership_auc"),
    )
    return new_version
