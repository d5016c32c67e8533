"""Consolidation: after K approximate removals, or T hours after the oldest, the model is retrained from scratch on
its live rows; every covered request becomes exact (`exact_as_of_version`), and its receipt shows it.

The API runs in process; the worker code (deletion job, consolidation job, reconciler) runs here on the real
database and Redis. The verdict of the engine's update is forced to `met` (tests/workers/outcomes.py)."""

from datetime import timedelta

import pytest
from rq.job import JobStatus
from sqlalchemy import select, update

from app.core.db import session_scope, utcnow
from app.deletions.orm import DeletionRequest
from tests.workers import factories as f
from tests.workers.outcomes import (
    assert_same_tensors,
    checkpoint,
    delete,
    receipt,
    register_trained,
    retrained,
    status,
)
from workers.jobs.consolidate import consolidate_model, job_id
from workers.jobs.deletions import apply_deletions
from workers.queue import enqueue_deletion, job_status
from workers.reconciler import reconcile

pytestmark = pytest.mark.usefixtures("test_queue")


def _uncovered(model_id: str) -> list[str]:
    """Succeeded requests of the model whose removal is still not exact."""
    with session_scope() as session:
        return list(
            session.execute(
                select(DeletionRequest.id).where(
                    DeletionRequest.model_id == model_id,
                    DeletionRequest.status == "succeeded",
                    DeletionRequest.exact_as_of_version.is_(None),
                )
            ).scalars()
        )


def test_k_approximate_removals_are_consolidated_and_every_receipt_shows_it(app, client, verdict):
    model_id = register_trained(app, client, unlearn={"consolidate_after_deletions": 2})
    policy = client.get(f"/v1/models/{model_id}").json()["policy"]
    assert client.get(f"/v1/models/{model_id}").json()["unlearn"]["consolidate_after_deletions"] == 2
    assert policy == {"escalate": "retrain", "consolidate_after_deletions": 2, "consolidate_after_hours": 24.0}
    first = delete(client, model_id, [0])
    apply_deletions(model_id)
    assert status(client, first)["exact_as_of_version"] is None
    assert job_status(job_id(model_id)) is None, "one approximate removal: not due yet"

    second = delete(client, model_id, [1, 2])
    apply_deletions(model_id)
    assert job_status(job_id(model_id)) == JobStatus.QUEUED, "the deletion job queues the consolidation"
    assert sorted(_uncovered(model_id)) == sorted([first, second])

    assert consolidate_model(model_id) == {"model_id": model_id, "version": 4}

    assert _uncovered(model_id) == []
    for rid, result in ((first, 2), (second, 3)):
        body = status(client, rid)
        assert (body["removed_by"], body["result_version"], body["exact_as_of_version"]) == ("iau", result, 4)
        proof = receipt(client, rid)
        assert proof["request"]["exact_as_of_version"] == 4
        assert proof["exact_version"]["checkpoint_sha256"] == f.versions(model_id)[3].checkpoint_sha256
    assert [(v.version, v.state) for v in f.versions(model_id)] == [
        (1, "purged"), (2, "purged"), (3, "purged"), (4, "available"),
    ]  # fmt: skip
    assert client.get(f"/v1/models/{model_id}/versions/3/checkpoint").status_code == 410
    assert_same_tensors(checkpoint(client, model_id, 4), retrained([0, 1, 2]))
    summary = f.versions(model_id)[3].evidence_summary
    assert summary["method"] == "consolidation" and summary["exact"]["trigger"] == "deletions"
    assert summary["rows"]["covered"] == 3 and summary["outcome"]["met"] is True

    consolidated = [refs for e, refs in f.audit_events(model_id) if e == "model.consolidated"]
    assert consolidated == [{"model_id": model_id, "version": 4}]
    f.verify_audit_log()
    assert consolidate_model(model_id) == {"model_id": model_id, "skipped": True}, "nothing left to make exact"

    third = delete(client, model_id, [3])  # after consolidation, removals start approximate again
    apply_deletions(model_id)
    assert (status(client, third)["result_version"], status(client, third)["exact_as_of_version"]) == (5, None)


def test_the_hours_bound_is_checked_by_the_maintenance(app, client, verdict):
    model_id = register_trained(app, client, unlearn={"consolidate_after_hours": 1})
    rid = delete(client, model_id, [4])
    apply_deletions(model_id)
    assert reconcile().consolidations == []

    with session_scope() as session:  # applied two hours ago
        session.execute(
            update(DeletionRequest)
            .where(DeletionRequest.id == rid)
            .values(finished_at=utcnow() - timedelta(hours=2), created_at=utcnow() - timedelta(hours=2))
        )
    assert reconcile().consolidations == [model_id]
    assert reconcile().consolidations == [], "its job is queued already"

    assert consolidate_model(model_id)["version"] == 3
    assert status(client, rid)["exact_as_of_version"] == 3
    assert f.versions(model_id)[2].evidence_summary["exact"]["trigger"] == "hours"
    assert reconcile().consolidations == []


@pytest.mark.parametrize("backend", ["postgresql"])
def test_an_exact_retrain_covers_the_approximate_removals_before_it(app, client, verdict):
    model_id = register_trained(app, client)
    approximate = delete(client, model_id, [20])
    apply_deletions(model_id)
    exact = delete(client, model_id, [21], method="retrain")
    apply_deletions(model_id)

    assert (status(client, exact)["removed_by"], status(client, exact)["exact_as_of_version"]) == ("retrain", 3)
    assert status(client, exact)["outcome"]["target"] == {"kind": "exact"}
    assert status(client, approximate)["exact_as_of_version"] == 3
    receipt(client, approximate)
    assert_same_tensors(checkpoint(client, model_id, 3), retrained([20, 21]))
    assert job_status(job_id(model_id)) is None, "nothing approximate left: no consolidation queued"


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_worker_process_runs_the_consolidation(settings, workers):
    """The real `python -m workers`: the deletion job queues the consolidation and the worker runs it."""
    tenant = f.make_tenant()
    unlearn = {**f.MOVING_UPDATE, "repair_steps": 3, "escalate": "report", "consolidate_after_deletions": 1}
    model_id = f.trained_model(tenant, f.make_dataset(tenant, rows=600), unlearn_defaults=unlearn)
    rid = f.make_deletion(tenant, model_id, [0, 1])
    enqueue_deletion(rid, model_id)
    workers.start()
    done = f.wait_for(lambda: (r := f.request(rid)).exact_as_of_version and r, timeout=180, what="consolidation")
    assert (done.removed_by, done.result_version, done.exact_as_of_version) == ("iau", 2, 3)
    assert f.versions(model_id)[2].evidence_summary["method"] == "consolidation"
    assert [v.state for v in f.versions(model_id)] == ["purged", "purged", "available"]
