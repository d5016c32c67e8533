"""Rebuild the work queue from the database, the source of truth (docs/engine.md, docs/api.md).

Runs when a worker starts and then every Settings.reconcile_interval_s. It re-enqueues

- every deletion request `queued` in the database whose recorded job will not run (missing from Redis after a
  flush or restart, failed, finished, or `started` while nobody holds the model's lock);
- every request `running` while nobody holds its model's lock (the worker that ran it died);
- every model in `training` with no live training job;
- the gradient-cache refresh of each latest version that has none and no job for it;
- a consolidation of each model due for one (K approximate removals, or the oldest standing T hours:
  workers/jobs/consolidate.py) with no live job for it;

- the compaction of every data set whose compaction is due, or whose last compaction a crash stopped half-way
  (workers.jobs.compact finishes or abandons it);

and purges any superseded version left available, deletes blobs of purged versions that a crash left on disk,
deletes files in the blob store's tmp folder untouched for Settings.tmp_max_age_s (left by a crashed upload,
checkpoint or compaction write; with an object store also its incomplete multipart uploads), deletes this host's
scratch copies of blobs nothing names any more, and forgets decoded data sets whose blob was compacted away.
Every job is idempotent, so a needless re-enqueue costs a short no-op, never a second deletion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from rq.job import JobStatus
from sqlalchemy import select

from app.core.config import get_settings
from app.core.db import session_scope, utcnow
from app.core.logging import log_event
from app.deletions.orm import DeletionRequest
from app.models.orm import Model, ModelVersion
from workers.compaction import due_datasets
from workers.datastore import drop_stale, get_store
from workers.jobs.consolidate import enqueue_if_due
from workers.locks import dataset_lock_id, is_locked
from workers.publish import (
    blobs_in_use,
    delete_blob_if_unused,
    leftover_blobs,
    purge_version,
    superseded_versions,
)
from workers.queue import (
    LIVE_STATUSES,
    PENDING_STATUSES,
    enqueue_cache_refresh,
    enqueue_compaction,
    enqueue_deletion,
    enqueue_training,
    fetch_job,
    job_status,
)

log = logging.getLogger("workers.reconciler")

GRACE_S = 2.0  # a request younger than this may still be between its commit and its enqueue


@dataclass
class Report:
    deletions: list[str] = field(default_factory=list)  # request ids re-enqueued
    trainings: list[str] = field(default_factory=list)  # model ids re-enqueued
    caches: list[tuple[str, int]] = field(default_factory=list)  # (model id, version) enqueued
    consolidations: list[str] = field(default_factory=list)  # model ids whose consolidation was queued
    purged: list[tuple[str, int]] = field(default_factory=list)  # (model id, version) purged
    blobs: list[str] = field(default_factory=list)  # sha256 of purged versions' blobs deleted
    compactions: list[str] = field(default_factory=list)  # data set ids whose compaction was enqueued
    tmp_files: int = 0  # stale temporary files (and incomplete multipart uploads) deleted
    scratch_copies: int = 0  # scratch copies of blobs nothing names any more, deleted


def _job_will_run(job_id: str | None, model_id: str) -> bool:
    status = job_status(job_id)
    if status in PENDING_STATUSES:
        return True
    return status == JobStatus.STARTED and is_locked(model_id)


def reconcile() -> Report:
    report = Report()
    cutoff = utcnow() - timedelta(seconds=GRACE_S)
    with session_scope() as session:
        requests = session.execute(
            select(DeletionRequest.id, DeletionRequest.model_id, DeletionRequest.status, DeletionRequest.job_id)
            .where(DeletionRequest.status.in_(("queued", "running")), DeletionRequest.created_at <= cutoff)
            .order_by(DeletionRequest.created_at)
        ).all()
        training = list(session.execute(select(Model.id).where(Model.status == "training")).scalars())
        uncached = session.execute(
            select(ModelVersion.model_id, ModelVersion.version)
            .join(Model, Model.id == ModelVersion.model_id)
            .where(
                Model.latest_version == ModelVersion.version,
                ModelVersion.state == "available",
                ModelVersion.grad_cache_sha256.is_(None),
            )
        ).all()

    locked: dict[str, bool] = {}

    def model_busy(model_id: str) -> bool:
        if model_id not in locked:
            locked[model_id] = is_locked(model_id)
        return locked[model_id]

    for request_id, model_id, status, job_id in requests:
        if status == "running":
            if model_busy(model_id) or job_status(job_id) in PENDING_STATUSES:
                continue  # a live worker holds the model, or a job to take the request over is queued
        elif _job_will_run(job_id, model_id):
            continue
        enqueue_deletion(request_id, model_id, orphaned=status == "running")
        report.deletions.append(request_id)

    for model_id in training:
        if _job_will_run(f"train-{model_id}", model_id) or model_busy(model_id):
            continue
        enqueue_training(model_id, force=True)
        report.trainings.append(model_id)

    for model_id, version in uncached:
        if fetch_job(f"cache-{model_id}-v{version}") is not None:
            continue  # queued, running, or already tried (a failed refresh is not retried in a loop)
        enqueue_cache_refresh(model_id, version)
        report.caches.append((model_id, version))

    report.consolidations = enqueue_if_due()

    for model_id, version in superseded_versions():
        if not model_busy(model_id) and purge_version(model_id=model_id, version=version):
            report.purged.append((model_id, version))
    for sha in leftover_blobs():
        if delete_blob_if_unused(sha):
            report.blobs.append(sha)

    with session_scope() as session:
        due = due_datasets(session)
    for dataset_id in due:
        if job_status(f"compact-{dataset_id}") in LIVE_STATUSES or is_locked(dataset_lock_id(dataset_id)):
            continue  # one is waiting or running: it plans (and recovers) when it runs
        enqueue_compaction(dataset_id)
        report.compactions.append(dataset_id)
    report.tmp_files = get_store().sweep(max_age_s=get_settings().tmp_max_age_s)
    report.scratch_copies = prune_scratch()
    drop_stale()

    if (
        report.deletions
        or report.trainings
        or report.consolidations
        or report.purged
        or report.blobs
        or report.compactions
    ):
        log_event(
            log,
            "reconcile.done",
            deletions=len(report.deletions),
            trainings=len(report.trainings),
            caches=len(report.caches),
            consolidations=len(report.consolidations),
            purged=len(report.purged),
            blobs=len(report.blobs),
            compactions=len(report.compactions),
            tmp_files=report.tmp_files,
        )
    return report


def prune_scratch() -> int:
    """Delete this host's scratch copies of blobs nothing names any more (a purged version, a compacted data set):
    the process that deleted the object dropped its own copy, every other host drops its copies here. Returns how
    many went (none with the folder store, which keeps no copies)."""
    store = get_store()
    cached = store.cached()
    if not cached:
        return 0
    with session_scope() as session:
        live = blobs_in_use(session, cached)
    stale = [sha for sha in cached if sha not in live]
    for sha in stale:
        store.drop_cached(sha)
    return len(stale)
