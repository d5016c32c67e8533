"""Verdicts and escalation: an approximate update that misses its target is replaced by the exact retrain (policy
`retrain`) or published with `met: false` (policy `report`); nothing is lost when the worker dies in between.

The API runs in process (GET and receipts read what the workers wrote); the worker code runs here too, on the
real database and Redis. The verdict of the engine's update is forced (tests/workers/outcomes.py)."""

from datetime import timedelta

import pytest
from sqlalchemy import update

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
from workers.jobs import deletions, escalate
from workers.jobs.deletions import apply_deletions
from workers.jobs.updates import run_update
from workers.queue import get_queue, job_status
from workers.reconciler import reconcile

pytestmark = pytest.mark.usefixtures("test_queue")


def test_unmet_target_escalates_to_the_retrained_checkpoint(app, client, verdict):
    verdict["met"] = False
    model_id = register_trained(app, client)
    assert client.get(f"/v1/models/{model_id}").json()["policy"]["escalate"] == "retrain"
    first = delete(client, model_id, [0, 1, 2])
    second = delete(client, model_id, [3])
    assert status(client, first)["purpose"] == "privacy"

    apply_deletions(model_id)

    assert verdict["purposes"] == ["privacy"], "one approximate update for both requests"
    for rid in (first, second):
        body = status(client, rid)
        assert body["status"] == "succeeded", body
        assert (body["removed_by"], body["result_version"], body["exact_as_of_version"]) == ("retrain_escalated", 2, 2)
        assert body["outcome"]["target"] == {"kind": "exact"} and body["outcome"]["met"] is True
        missed = body["evidence"]["escalated_from"]
        assert missed["outcome"]["met"] is False and missed["base_version"] == 1
        assert body["evidence"]["method"] == "retrain"
    # the approximate result was never published: one new version, the retrained one
    assert [(v.version, v.state) for v in f.versions(model_id)] == [(1, "purged"), (2, "available")]
    assert_same_tensors(checkpoint(client, model_id, 2), retrained([0, 1, 2, 3]))

    events = [e for e, refs in f.audit_events(model_id) if refs.get("request_id") in (first, second)]
    assert events.count("deletion.escalated") == 2 and events.count("deletion.succeeded") == 2
    body = receipt(client, first)
    assert body["request"]["removed_by"] == "retrain_escalated" and body["request"]["exact_as_of_version"] == 2
    assert body["exact_version"]["checkpoint_sha256"] == f.versions(model_id)[1].checkpoint_sha256
    assert "deletion.escalated" in [a["entry"]["event_type"] for a in body["audit"]]
    f.verify_audit_log()


class WorkerDied(BaseException):
    """Stands for the process dying: not an Exception, so no handler of the job records it."""


def test_escalation_survives_the_worker_dying(app, client, verdict, monkeypatch):
    verdict["met"] = False
    model_id = register_trained(app, client)
    first = delete(client, model_id, [5, 6])
    second = delete(client, model_id, [7])
    real = escalate.escalate

    def escalate_then_die(**kwargs):
        real(**kwargs)
        raise WorkerDied

    monkeypatch.setattr(escalate, "escalate", escalate_then_die)
    with pytest.raises(WorkerDied):
        apply_deletions(model_id)
    monkeypatch.setattr(escalate, "escalate", real)

    for rid in (first, second):
        body = status(client, rid)
        assert (body["status"], body["stage"], body["removed_by"]) == ("queued", "escalated", None), body
        assert body["evidence"]["escalated_from"]["outcome"]["met"] is False
    assert [v.version for v in f.versions(model_id)] == [1]

    with session_scope() as session:  # past the reconciler's grace period
        session.execute(
            update(DeletionRequest)
            .where(DeletionRequest.model_id == model_id)
            .values(created_at=utcnow() - timedelta(minutes=1))
        )
    report = reconcile()
    assert sorted(report.deletions) == sorted([first, second])
    assert job_status(f.request(first).job_id) is not None

    def die_retraining(**kwargs):  # the re-enqueued job's worker dies too, during the retrain
        assert kwargs["method"] == "retrain"
        raise WorkerDied

    monkeypatch.setattr(deletions, "run_update", die_retraining)
    get_queue().empty()  # a worker took the re-enqueued job ...
    with pytest.raises(WorkerDied):
        apply_deletions(model_id)
    monkeypatch.setattr(deletions, "run_update", run_update)
    assert {f.request(rid).status for rid in (first, second)} == {"running"}
    assert sorted(reconcile().deletions) == sorted([first, second]), "orphaned while running: taken over"

    apply_deletions(model_id)  # what the re-enqueued job runs
    assert len(verdict["purposes"]) == 1, "the approximate update is not run again"
    for rid in (first, second):
        body = status(client, rid)
        assert (body["status"], body["removed_by"], body["result_version"]) == ("succeeded", "retrain_escalated", 2)
    assert_same_tensors(checkpoint(client, model_id, 2), retrained([5, 6, 7]))


@pytest.mark.parametrize("backend", ["postgresql"])
def test_report_policy_publishes_the_unmet_verdict(app, client, verdict):
    verdict["met"] = False
    model_id = register_trained(app, client, unlearn={"escalate": "report"})
    rid = delete(client, model_id, [9], purpose="poison")

    apply_deletions(model_id)

    body = status(client, rid)
    assert body["status"] == "succeeded" and body["purpose"] == "poison"
    assert (body["removed_by"], body["result_version"], body["exact_as_of_version"]) == ("iau", 2, None)
    assert body["outcome"]["met"] is False and "forced" in body["outcome"]["reason"]
    assert body["evidence"]["escalation"]["policy"] == "report"
    assert body["evidence"]["purpose"] == "poison"
    assert verdict["purposes"] == ["poison"], "the request's purpose configures the update"
    assert [(v.version, v.state) for v in f.versions(model_id)] == [(1, "purged"), (2, "available")]
    assert receipt(client, rid)["outcome"]["met"] is False


@pytest.mark.parametrize("backend", ["postgresql"])
def test_met_target_is_published_as_an_approximate_removal(app, client, verdict):
    model_id = register_trained(app, client)
    rid = delete(client, model_id, [11])
    apply_deletions(model_id)
    body = status(client, rid)
    assert (body["removed_by"], body["result_version"], body["exact_as_of_version"]) == ("iau", 2, None)
    assert body["outcome"]["met"] is True and "escalated_from" not in body["evidence"]
    assert receipt(client, rid)["request"]["exact_as_of_version"] is None


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_engines_own_unmet_verdict_escalates(app, client):
    """No forcing: a target the engine cannot reach (membership AUC exactly 0) gives met false, then the retrain."""
    unreachable = {"target_auc": 0.0, "row_targets": False, "auc_tolerance": 0.0, "auc_noise_z": 0.0, "repair_steps": 2}
    model_id = register_trained(app, client, unlearn=unreachable)
    rid = delete(client, model_id, [30, 31, 32])
    apply_deletions(model_id)
    body = status(client, rid)
    missed = body["evidence"]["escalated_from"]
    assert missed["outcome"]["met"] is False and missed["outcome"]["target"]["kind"] == "membership"
    assert missed["update"] == "targeted" and missed["purpose"] == "privacy"
    assert (body["status"], body["removed_by"], body["exact_as_of_version"]) == ("succeeded", "retrain_escalated", 2)
    assert_same_tensors(checkpoint(client, model_id, 2), retrained([30, 31, 32]))
