"""Subject erasure across models: POST /v1/datasets/{id}/erasures fans out one deletion per model, reports one
combined status, and finishes with the data set's compaction. The worker jobs run in this process."""

import pytest
from sqlalchemy import select

from app.audit.commitments import check_sample_ids
from app.audit.orm import AuditEntry
from app.audit.outbox import sequence
from app.core.db import session_scope
from app.deletions.orm import DeletionRequest
from tests.app.dbcount import row_counts
from tests.app.fakes import RecordingJobs
from tests.conftest import auth
from tests.helpers import digits_safetensors, register_uploaded_model, upload_dataset, upload_digits
from workers.jobs.compact import compact_dataset
from workers.jobs.deletions import apply_deletions
from workers.publish import fail_requests


@pytest.fixture
def jobs(app) -> RecordingJobs:
    app.state.jobs = RecordingJobs()
    return app.state.jobs


def erase(client, dataset_id, ids, **extra):
    headers = extra.pop("headers", {})
    return client.post(f"/v1/datasets/{dataset_id}/erasures", json={"sample_ids": ids, **extra}, headers=headers)


def _apply_all(model_id: str) -> None:
    apply_deletions(model_id)
    with session_scope() as session:
        waiting = session.scalars(
            select(DeletionRequest).where(DeletionRequest.model_id == model_id, DeletionRequest.status != "succeeded")
        ).all()
    assert not waiting, [(r.id, r.status, r.error) for r in waiting]


def _audit(dataset_id: str) -> list[AuditEntry]:
    with session_scope() as session:
        sequence(session)
    with session_scope() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all())


def test_erasure_fans_out_reports_one_status_and_ends_with_compaction(client, jobs):
    dataset = upload_digits(client, rows=120)
    first = register_uploaded_model(client, dataset["id"], name="a")
    second = register_uploaded_model(client, dataset["id"], name="b")
    pending = client.post(f"/v1/models/{first['id']}/deletions", json={"sample_ids": ["user-3"]})
    assert pending.status_code == 202

    resp = erase(client, dataset["id"], ["user-3", "user-5", "user-3"], reason="subject asked")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert resp.headers["location"] == f"/v1/erasures/{body['id']}"
    assert (body["status"], body["stage"], body["sample_count"], body["rows_erased"]) == ("running", "deleting", 2, 0)
    assert check_sample_ids(["user-5", "user-3"], body["commitment_salt"], body["sample_ids_sha256"])
    children = {d["model_id"]: d for d in body["deletions"]}
    assert set(children) == {first["id"], second["id"]}
    assert jobs.deletions == [pending.json()["id"], *[d["id"] for d in body["deletions"]]]
    counts = {d["model_id"]: client.get(f"/v1/deletions/{d['id']}").json()["sample_count"] for d in body["deletions"]}
    assert counts == {first["id"]: 1, second["id"]: 2}, "user-3 is already pending on the first model"

    _apply_all(first["id"])
    assert client.get(resp.headers["location"]).json()["stage"] == "deleting", "the second model still carries them"
    _apply_all(second["id"])
    status = client.get(resp.headers["location"]).json()
    assert (status["status"], status["stage"]) == ("running", "compacting")
    assert status["compaction_due_at"] is not None

    assert compact_dataset(dataset["id"])["rows"] == 2
    status = client.get(resp.headers["location"]).json()
    assert (status["status"], status["stage"], status["rows_erased"], status["progress"]) == (
        "succeeded",
        "erased",
        2,
        1.0,
    )
    assert status["finished_at"] is not None and all(d["status"] == "succeeded" for d in status["deletions"])
    meta = client.get(f"/v1/datasets/{dataset['id']}").json()
    assert (meta["num_rows"], meta["erased_count"], meta["deleted_count"]) == (118, 2, 2)

    again = client.post(f"/v1/models/{first['id']}/deletions", json={"sample_ids": ["user-5"]})
    assert again.status_code == 409 and again.json()["conflicts"][0]["state"] == "erased"
    assert again.json()["deletion_ids"] == [children[first["id"]]["id"]], "the erasure's deletion on that model"
    assert erase(client, dataset["id"], ["user-5"]).status_code == 409
    unknown = erase(client, dataset["id"], ["user-5", "nobody"])
    assert unknown.status_code == 422 and unknown.json()["unknown_ids"] == ["nobody"]

    kinds = [e.event_type for e in _audit(dataset["id"]) if e.refs.get("dataset_id") == dataset["id"]]
    assert [k for k in kinds if k.startswith(("erasure.", "dataset.compacted"))] == [
        "erasure.requested",
        "dataset.compacted",
        "erasure.completed",
    ]


def test_erasure_of_a_data_set_without_models_compacts_right_away(client, jobs):
    resp = upload_dataset(client, digits_safetensors(rows=60), ids="".join(f"p-{i}\n" for i in range(60)))
    dataset = resp.json()
    resp = erase(client, dataset["id"], ["p-7", "p-8"])
    assert resp.status_code == 202, resp.text
    assert resp.json()["deletions"] == [] and jobs.compactions == [dataset["id"]]
    assert client.get(f"/v1/datasets/{dataset['id']}").json()["compaction_due_at"] is not None
    assert compact_dataset(dataset["id"])["rows"] == 2
    status = client.get(resp.headers["location"]).json()
    assert status["status"] == "succeeded"
    meta = client.get(f"/v1/datasets/{dataset['id']}").json()
    assert (meta["num_rows"], meta["erased_count"], meta["compaction_due_at"]) == (58, 2, None)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_failed_deletion_fails_the_erasure(client, jobs):
    dataset = upload_digits(client, rows=60)
    model = register_uploaded_model(client, dataset["id"])
    resp = erase(client, dataset["id"], ["user-1"])
    (child,) = resp.json()["deletions"]
    fail_requests(model_id=model["id"], reasons={child["id"]: "the worker gave up"})
    status = client.get(resp.headers["location"]).json()
    assert status["status"] == "failed" and "the worker gave up" in status["error"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_erasure_left_without_a_deletion_on_a_model_is_failed(client, jobs):
    """Rows another request had claimed on a model, and that request failed: nothing removes them there."""
    dataset = upload_digits(client, rows=60)
    model = register_uploaded_model(client, dataset["id"])
    other = client.post(f"/v1/models/{model['id']}/deletions", json={"sample_ids": ["user-2"]}).json()
    resp = erase(client, dataset["id"], ["user-2"])
    assert resp.json()["deletions"] == []
    fail_requests(model_id=model["id"], reasons={other["id"]: "gave up"})
    status = client.get(resp.headers["location"]).json()
    assert status["status"] == "failed" and f"model {model['id']} still carries 1" in status["error"]


def test_bad_erasures_change_nothing(client, root_client, app, jobs, make_key):
    dataset = upload_digits(client, rows=60)
    register_uploaded_model(client, dataset["id"])
    before = row_counts(app)
    assert erase(client, dataset["id"], []).status_code == 422
    assert erase(client, dataset["id"], ["user-1"], method="magic").status_code == 422
    assert erase(client, "nope", ["user-1"]).status_code == 404
    assert erase(root_client, dataset["id"], ["user-1"]).status_code == 404, "another tenant's data set"
    assert erase(client, dataset["id"], ["user-1"], headers=auth(make_key("reader"))).status_code == 403
    app.state.settings = app.state.settings.model_copy(update={"max_ids_per_request": 2})
    assert erase(client, dataset["id"], ["user-1", "user-2", "user-3"]).status_code == 422
    training = client.post(
        "/v1/models",
        json={
            "name": "t",
            "dataset_id": dataset["id"],
            "architecture": {"name": "logreg", "config": {"in_features": 64, "num_classes": 10}},
            "train": {"epochs": 1},
        },
    )
    assert training.status_code == 202
    before = row_counts(app)
    busy = erase(client, dataset["id"], ["user-1"])
    assert busy.status_code == 409 and "training" in busy.json()["detail"]
    assert row_counts(app) == before
    assert client.get("/v1/erasures/nope").status_code == 404


def test_replayed_erasure_is_the_original_response(client, jobs):
    dataset = upload_digits(client, rows=60)
    register_uploaded_model(client, dataset["id"])
    headers = {"Idempotency-Key": "erase-1"}
    first = erase(client, dataset["id"], ["user-9"], headers=headers)
    again = erase(client, dataset["id"], ["user-9"], headers=headers)
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and len(jobs.deletions) == 1
