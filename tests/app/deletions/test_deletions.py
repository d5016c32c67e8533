"""Deletion requests: validation, conflicts, idempotency, outages."""

import threading

import pytest
from fastapi.testclient import TestClient

from app.core.deps import JobQueue
from app.core.errors import ServiceUnavailable
from app.main import create_app
from tests.app.dbcount import row_counts
from tests.app.fakes import RecordingJobs
from tests.conftest import auth
from tests.helpers import register_uploaded_model, upload_digits


@pytest.fixture
def jobs(app) -> RecordingJobs:
    app.state.jobs = RecordingJobs()
    return app.state.jobs


@pytest.fixture
def model(client, jobs) -> dict:
    ds = upload_digits(client, rows=200)
    return register_uploaded_model(client, ds["id"])


def post(client, model, ids, **extra):
    headers = extra.pop("headers", {})
    return client.post(f"/v1/models/{model['id']}/deletions", json={"sample_ids": ids, **extra}, headers=headers)


def test_accepted_recorded_and_enqueued(client, jobs, model):
    resp = post(client, model, ["user-1", "user-2", "user-1"], reason="account closed")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert resp.headers["location"] == f"/v1/deletions/{body['id']}"
    assert body["status"] == "queued" and body["sample_count"] == 2 and body["method"] == "iau"
    assert jobs.deletions == [body["id"]]
    got = client.get(resp.headers["location"])
    assert got.status_code == 200
    for key in (
        "id",
        "model_id",
        "status",
        "stage",
        "progress",
        "base_version",
        "result_version",
        "evidence",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    ):
        assert key in got.json()


def test_purpose_and_verdict_fields(client, jobs, model):
    default = post(client, model, ["user-7"]).json()
    assert default["purpose"] == "privacy"
    assert (default["outcome"], default["removed_by"], default["exact_as_of_version"]) == (None, None, None)
    poison = post(client, model, ["user-8"], purpose="poison", reason="mislabelled")
    assert poison.status_code == 202, poison.text
    got = client.get(poison.headers["location"]).json()
    assert got["purpose"] == "poison" and got["status"] == "queued"
    for key in ("outcome", "removed_by", "exact_as_of_version"):
        assert key in got and got[key] is None


def test_bad_input_changes_nothing(client, app, jobs, model):
    post(client, model, ["user-5"])
    before = row_counts(app)
    resp = post(client, model, ["user-1", "ghost-1", "ghost-2"])
    assert resp.status_code == 422 and resp.json()["unknown_ids"] == ["ghost-1", "ghost-2"]
    assert "ghost-1" in resp.json()["detail"]
    assert post(client, model, []).status_code == 422
    assert post(client, model, ["user-1"], method="magic").status_code == 422
    bad_purpose = post(client, model, ["user-1"], purpose="revenge")
    assert bad_purpose.status_code == 422 and bad_purpose.headers["content-type"].startswith("application/problem+json")
    assert "purpose" in bad_purpose.text
    assert client.post(f"/v1/models/{model['id']}/deletions", json={"ids": ["user-1"]}).status_code == 422
    assert (
        client.post(
            f"/v1/models/{model['id']}/deletions", content=b"[", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert post(client, {"id": "nope"}, ["user-1"]).status_code == 404
    conflict = post(client, model, ["user-4", "user-5"])
    assert conflict.status_code == 409
    assert [c["sample_id"] for c in conflict.json()["conflicts"]] == ["user-5"]
    assert conflict.json()["deletion_ids"][0] in conflict.json()["detail"]
    assert row_counts(app) == before
    assert len(jobs.deletions) == 1


def test_limit_on_ids_per_request(client, app, jobs, model, settings):
    app.state.settings = settings.model_copy(update={"max_ids_per_request": 3})
    before = row_counts(app)
    resp = post(client, model, [f"user-{i}" for i in range(4)])
    assert resp.status_code == 422 and resp.json()["limit"] == 3
    assert row_counts(app) == before


def test_model_not_ready_is_409(client, app, jobs):
    ds = upload_digits(client, rows=50)
    spec = {
        "name": "m",
        "dataset_id": ds["id"],
        "architecture": {"name": "logreg", "config": {"in_features": 64, "num_classes": 10}},
    }
    model = client.post("/v1/models", json={**spec, "train": {"epochs": 1}}).json()
    assert post(client, model, ["user-1"]).status_code == 409


def test_roles_and_tenants(client, root_client, jobs, model, make_key):
    reader = make_key("reader")
    requester = make_key("requester")
    assert post(client, model, ["user-1"], headers=auth(reader)).status_code == 403
    resp = post(client, model, ["user-1"], headers=auth(requester))
    assert resp.status_code == 202
    assert client.get(resp.headers["location"], headers=auth(reader)).status_code == 403
    assert root_client.get(resp.headers["location"]).status_code == 404
    assert post(root_client, model, ["user-2"]).status_code == 404
    assert client.get("/v1/deletions/nope").status_code == 404


def test_idempotency(client, app, jobs, model):
    headers = {"Idempotency-Key": "del-1"}
    first = post(client, model, ["user-1"], headers=headers)
    before = row_counts(app)
    again = post(client, model, ["user-1"], headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    named = post(client, model, ["user-1"], purpose="privacy", headers=headers)  # the default, named: the same body
    assert named.status_code == 202 and named.json() == first.json()
    assert post(client, model, ["user-1"], purpose="poison", headers=headers).status_code == 422
    assert post(client, model, ["user-2"], headers=headers).status_code == 422
    assert row_counts(app) == before
    assert jobs.deletions == [first.json()["id"]]
    # a failed request releases its key: the retry runs again
    assert post(client, model, ["ghost"], headers={"Idempotency-Key": "del-2"}).status_code == 422
    assert post(client, model, ["user-3"], headers={"Idempotency-Key": "del-2"}).status_code == 202


def test_idempotency_in_flight_is_409(client, app, jobs, model, monkeypatch):
    from app.deletions import service

    entered, release = threading.Event(), threading.Event()
    original = service.create_deletion

    def slow(*args, **kwargs):
        entered.set()
        release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(service, "create_deletion", slow)
    headers = {"Idempotency-Key": "slow-1"}
    results = {}
    worker = threading.Thread(target=lambda: results.update(first=post(client, model, ["user-9"], headers=headers)))
    worker.start()
    assert entered.wait(10)
    try:
        second = post(client, model, ["user-9"], headers=headers)
    finally:
        release.set()
        worker.join(10)
    assert second.status_code == 409
    assert results["first"].status_code == 202


def test_concurrent_claims_on_one_row(client, app, jobs, model):
    codes = []
    threads = [
        threading.Thread(target=lambda: codes.append(post(client, model, ["user-7"]).status_code)) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202] + [409] * 5, codes


def test_redis_down_is_503_and_writes_nothing(client, app, model):
    app.state.jobs = RecordingJobs(redis_up=False)
    before = row_counts(app)
    resp = post(client, model, ["user-1"], headers={"Idempotency-Key": "r-1"})
    assert resp.status_code == 503 and resp.headers["retry-after"]
    assert row_counts(app) == before


def test_unreachable_redis_is_503_and_writes_nothing(client, app, model):
    """The real Redis client against a port where nothing listens: the request is refused before any write."""
    app.state.jobs = JobQueue("redis://127.0.0.1:1/0")
    before = row_counts(app)
    resp = post(client, model, ["user-1"], headers={"Idempotency-Key": "r-2"})
    assert resp.status_code == 503 and resp.headers["retry-after"], resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert row_counts(app) == before


def test_enqueue_failure_after_commit_still_202(client, app, model):
    app.state.jobs = RecordingJobs(enqueue_fails=True)
    resp = post(client, model, ["user-1"])
    assert resp.status_code == 202
    assert client.get(resp.headers["location"]).json()["status"] == "queued"


def test_database_down_is_503(settings, admin_key):
    down = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    with TestClient(create_app(down), headers=auth(admin_key)) as c:
        resp = c.post("/v1/models/x/deletions", json={"sample_ids": ["a"]})
        assert resp.status_code == 503 and resp.headers["retry-after"]
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert c.get("/readyz").status_code == 503
    assert issubclass(ServiceUnavailable, Exception)


def test_requests_larger_than_one_lookup_chunk(client, app, jobs):
    """Ids past the first lookup chunk (looked up with the model) are validated and claimed like the first."""
    from app.deletions.repository import LOOKUP_CHUNK

    n = LOOKUP_CHUNK + 300
    ds = upload_digits(client, rows=n + 10)
    model = register_uploaded_model(client, ds["id"])
    late = f"user-{LOOKUP_CHUNK + 50}"  # in the second chunk
    first = post(client, model, [late])
    assert first.status_code == 202, first.text
    ids = [f"user-{i}" for i in range(n)]
    before = row_counts(app)
    unknown = post(client, model, [*ids, "nobody"])
    assert unknown.status_code == 422 and unknown.json()["unknown_ids"] == ["nobody"]
    conflict = post(client, model, ids)
    assert conflict.status_code == 409, conflict.text
    assert [c["sample_id"] for c in conflict.json()["conflicts"]] == [late]
    assert conflict.json()["deletion_ids"] == [first.json()["id"]]
    assert row_counts(app) == before
    rest = post(client, model, [i for i in ids if i != late])
    assert rest.status_code == 202 and rest.json()["sample_count"] == n - 1
