"""The reconciler rebuilds the queue from the database (no worker runs here; jobs are only inspected)."""

from datetime import timedelta

import pytest
from rq.job import JobStatus
from sqlalchemy import update

from app.core.db import session_scope, utcnow
from app.deletions.orm import DeletionRequest
from tests.workers import factories as f
from workers.locks import ModelLock
from workers.queue import enqueue_deletion, get_queue, job_status
from workers.reconciler import reconcile

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


def _age(request_id: str, **values) -> None:
    """Make a request look older than the reconciler's grace period (and set other columns)."""
    with session_scope() as session:
        session.execute(
            update(DeletionRequest)
            .where(DeletionRequest.id == request_id)
            .values(created_at=utcnow() - timedelta(minutes=1), **values)
        )


def test_reconcile_requeues_lost_and_orphaned_work_only(settings, test_queue):
    tenant = f.make_tenant()
    dataset = f.make_dataset(tenant, rows=200)
    training = f.make_training_model(tenant, dataset)
    model_id = f.make_training_model(tenant, dataset)
    with session_scope() as session:
        session.execute(update(f.Model).where(f.Model.id == model_id).values(status="ready", latest_version=None))

    lost = f.make_deletion(tenant, model_id, [1])  # committed, never enqueued
    _age(lost)
    pending = f.make_deletion(tenant, model_id, [2])
    enqueue_deletion(pending, model_id)  # a live queued job
    _age(pending)
    orphan = f.make_deletion(tenant, model_id, [3])
    _age(orphan, status="running", job_id="del-gone")  # its worker died
    fresh = f.make_deletion(tenant, model_id, [4])  # within the grace period: its enqueue may be in flight

    report = reconcile()
    assert sorted(report.deletions) == sorted([lost, orphan])
    assert report.trainings == [training]
    for rid in (lost, orphan, pending):
        assert job_status(f.request(rid).job_id) == JobStatus.QUEUED
    assert f.request(fresh).job_id is None
    second = reconcile().deletions
    assert set(second) <= {fresh}, "nothing twice while the re-enqueued jobs wait for a worker"

    # a running request whose model lock is held by a live process is left alone
    get_queue().empty()
    lock = ModelLock(model_id)
    assert lock.acquire()
    try:
        again = reconcile()
    finally:
        lock.release()
    assert orphan not in again.deletions
    assert lost in again.deletions and pending in again.deletions  # their jobs were emptied from the queue
