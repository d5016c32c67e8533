"""The RQ queue: connections, job ids and the enqueue functions the API and the workers call.

Redis is only a work queue; the database is the source of truth. Every job is idempotent (it re-reads the
database under the model's lock and does nothing when the work is already done), so a duplicate job costs one
short no-op, and the reconciler may re-enqueue freely.

Job ids:
    train-{model_id}                 one live training job per model (a second enqueue is a no-op)
    cache-{model_id}-v{version}      one live gradient-cache refresh per version
    consolidate-{model_id}           one live consolidation (exact retrain on the live rows) per model
    del-{request_id}-{random}        a deletion job, recorded on the row of every request it was enqueued for
                                     (one request, or the first of several of one model sent together)
    compact-{dataset_id}             one waiting compaction per data set (it plans when it runs)
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from functools import lru_cache

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import update

from app.core.config import get_settings
from app.core.logging import log_event

log = logging.getLogger("workers.queue")

# RQ statuses of a job that will still run (or is running) on some worker.
PENDING_STATUSES = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
LIVE_STATUSES = PENDING_STATUSES | {JobStatus.STARTED}
BATCH_UPDATE_CHUNK = 900  # request ids per UPDATE ... IN (...) (below SQLite's bound-parameter limit)
RESULT_TTL_S = 3600  # seconds a finished job's record stays in Redis
FAILURE_TTL_S = 7 * 24 * 3600  # seconds a failed job's record stays in Redis


@lru_cache
def _redis(url: str) -> Redis:
    return Redis.from_url(url)


def get_redis() -> Redis:
    return _redis(get_settings().redis_url)


def get_queue() -> Queue:
    return Queue(get_settings().queue_name, connection=get_redis())


def fetch_job(job_id: str | None) -> Job | None:
    if not job_id:
        return None
    try:
        return Job.fetch(job_id, connection=get_redis())
    except NoSuchJobError:
        return None


def job_status(job_id: str | None) -> JobStatus | None:
    job = fetch_job(job_id)
    if job is None:
        return None
    try:
        return job.get_status(refresh=True)
    except NoSuchJobError:
        return None


def _enqueue(func: str, args: tuple, job_id: str, *, description: str, delay_s: float = 0) -> Job:
    settings = get_settings()
    queue = get_queue()
    options = dict(
        args=args,
        job_id=job_id,
        description=description,
        job_timeout=settings.job_timeout_s,
        result_ttl=RESULT_TTL_S,
        failure_ttl=FAILURE_TTL_S,
    )
    if delay_s > 0:
        return queue.enqueue_in(timedelta(seconds=delay_s), func, **options)
    return queue.enqueue(func, **options)


def _enqueue_once(func: str, args: tuple, job_id: str, *, description: str, force: bool) -> Job:
    """Enqueue under a fixed id unless a job with that id will still run; `force` replaces a started one."""
    old = fetch_job(job_id)
    if old is not None:
        status = job_status(job_id)
        if status in PENDING_STATUSES or (status == JobStatus.STARTED and not force):
            return old
        old.delete(remove_from_queue=True)
    return _enqueue(func, args, job_id, description=description)


def enqueue_training(model_id: str, *, force: bool = False) -> str:
    """Queue the training of a model's version 1 (call after the model row is committed)."""
    job = _enqueue_once(
        "workers.jobs.train.train_model",
        (model_id,),
        f"train-{model_id}",
        description=f"train model {model_id}",
        force=force,
    )
    log_event(log, "job.enqueued", kind="train", model_id=model_id, enqueued_job_id=job.id)
    return job.id


def enqueue_deletion(
    request_id: str, model_id: str | None = None, *, delay_s: float = 0, orphaned: bool = False
) -> str:
    """Queue the application of a deletion request (call after the request row is committed).

    The new job id is written on the request row in its own short transaction, only while the request is
    still `queued` (a worker that already took it over records its own job id), or also while `running` when
    the reconciler re-enqueues a request whose worker died (`orphaned`).
    """
    from app.core.db import session_scope
    from app.deletions.orm import DeletionRequest

    if model_id is None:
        with session_scope() as session:
            model_id = session.get(DeletionRequest, request_id).model_id
    job_id = new_deletion_job_id(request_id)
    with session_scope() as session:
        session.execute(
            update(DeletionRequest)
            .where(
                DeletionRequest.id == request_id,
                DeletionRequest.status.in_(("queued", "running") if orphaned else ("queued",)),
            )
            .values(job_id=job_id)
        )
    return enqueue_deletion_job(request_id, model_id, job_id, delay_s=delay_s)


def new_deletion_job_id(request_id: str) -> str:
    return f"del-{request_id}-{uuid.uuid4().hex[:8]}"


def enqueue_deletion_job(request_id: str, model_id: str, job_id: str, *, delay_s: float = 0) -> str:
    """Queue a deletion request under a job id already recorded on its row (the API stores it with the INSERT,
    so a POST is one transaction)."""
    _enqueue(
        "workers.jobs.deletions.apply_deletions",
        (model_id, request_id),
        job_id,
        description=f"apply deletions to model {model_id} (request {request_id})",
        delay_s=delay_s,
    )
    log_event(log, "job.enqueued", kind="deletion", model_id=model_id, deletion_id=request_id, enqueued_job_id=job_id)
    return job_id


def enqueue_deletion_batch(items: list[tuple[str, str, str]]) -> list[str]:
    """Queue committed deletion requests, each (request_id, model_id, job_id recorded on its row), with one job
    per model in one Redis round trip (what the API's background sender calls); returns the job ids.

    A job applies every request waiting for its model (the update coalesces them), so the requests of one model
    that arrive together need one job, not one each: their rows are pointed at that job first (one UPDATE, only
    while still `queued`), then it is enqueued, so the reconciler sees a live job for each of them. A model with a
    single request keeps the job id recorded with it and needs no write.
    """
    if not items:
        return []
    from app.core.db import session_scope
    from app.deletions.orm import DeletionRequest

    by_model: dict[str, list[tuple[str, str]]] = {}
    for request_id, model_id, job_id in items:
        by_model.setdefault(model_id, []).append((request_id, job_id))
    jobs: list[tuple[str, str | None, str, int]] = []  # model, request named in the job, job id, requests
    shared = {model_id: group for model_id, group in by_model.items() if len(group) > 1}
    if shared:
        with session_scope() as session:
            for model_id, group in shared.items():
                job_id = new_deletion_job_id(group[0][0])
                ids = [request_id for request_id, _ in group]
                for start in range(0, len(ids), BATCH_UPDATE_CHUNK):
                    session.execute(
                        update(DeletionRequest)
                        .where(
                            DeletionRequest.id.in_(ids[start : start + BATCH_UPDATE_CHUNK]),
                            DeletionRequest.status == "queued",
                        )
                        .values(job_id=job_id)
                    )
                jobs.append((model_id, None, job_id, len(group)))
    for model_id, group in by_model.items():
        if len(group) == 1:
            jobs.append((model_id, group[0][0], group[0][1], 1))
    settings = get_settings()
    queue = get_queue()
    datas = [
        Queue.prepare_data(
            "workers.jobs.deletions.apply_deletions",
            args=(model_id, request_id),
            job_id=job_id,
            description=f"apply deletions to model {model_id} ({count} request(s))",
            timeout=settings.job_timeout_s,
            result_ttl=RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )
        for model_id, request_id, job_id, count in jobs
    ]
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many(datas, pipeline=pipe)
        pipe.execute()
    for model_id, _, job_id, count in jobs:
        log_event(log, "job.enqueued", kind="deletion", model_id=model_id, requests=count, enqueued_job_id=job_id)
    return [job_id for _, _, job_id, _ in jobs]


def enqueue_cache_refresh(model_id: str, version: int) -> str:
    """Queue the computation of version `version`'s gradient cache G."""
    job = _enqueue_once(
        "workers.jobs.cache.refresh_cache",
        (model_id, version),
        f"cache-{model_id}-v{version}",
        description=f"refresh gradient cache of model {model_id} version {version}",
        force=False,
    )
    log_event(log, "job.enqueued", kind="cache", model_id=model_id, version=version, enqueued_job_id=job.id)
    return job.id


def enqueue_consolidation(model_id: str, *, force: bool = False) -> str:
    """Queue a consolidation of the model (it checks again, under the model's lock, that one is due)."""
    job = _enqueue_once(
        "workers.jobs.consolidate.consolidate_model",
        (model_id,),
        f"consolidate-{model_id}",
        description=f"consolidate model {model_id}",
        force=force,
    )
    log_event(log, "job.enqueued", kind="consolidation", model_id=model_id, enqueued_job_id=job.id)
    return job.id


def enqueue_compaction(dataset_id: str, *, delay_s: float = 0) -> str:
    """Queue a compaction of the data set in `delay_s` seconds, unless one is already waiting (it plans when it
    runs, so it covers what was deleted since) or running (the data set stays due; the reconciler queues the
    next one once it has finished)."""
    job_id = f"compact-{dataset_id}"
    old = fetch_job(job_id)
    if old is not None:
        if job_status(job_id) in LIVE_STATUSES:
            return job_id
        old.delete(remove_from_queue=True)
    _enqueue(
        "workers.jobs.compact.compact_dataset",
        (dataset_id,),
        job_id,
        description=f"compact data set {dataset_id}",
        delay_s=delay_s,
    )
    log_event(log, "job.enqueued", kind="compaction", dataset_id=dataset_id, delay_s=delay_s, enqueued_job_id=job_id)
    return job_id
