"""DELETE /v1/models/{id}: every version's checkpoint and gradient cache, the deletion requests and tombstones
(which hold sample ids) and the model's rows are gone; the audit log keeps hashes and counts only."""

import secrets

from sqlalchemy import func, select, update

from app.deletions.orm import DeletionRequest, Tombstone
from app.keys.orm import IdempotencyRecord
from app.models.orm import Model, ModelVersion
from tests.app.fakes import RecordingJobs
from tests.app.written import database_text, snapshot, stored_files
from tests.conftest import auth
from tests.helpers import LOGREG_SPEC, logreg_checkpoint, register_uploaded_model, upload_digits

REASON = "reason-marker-7f3a"  # a value that lives only in the model's deletion request


def _checkpoint() -> bytes:
    """A checkpoint no other test uploads: the databases are shared by the session, and a blob that another
    model's version names must stay."""
    return logreg_checkpoint(seed=secrets.randbelow(2**31))


def _blob(app, data: bytes) -> str:
    sha, _ = app.state.store.put_bytes(data)
    return sha


def _model_with_history(client, app) -> tuple[dict, dict, dict]:
    """A model with a purged version 1, an available version 2 holding a gradient cache, a succeeded request and a
    queued one (pending tombstones), and an Idempotency-Key used on its deletions."""
    app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=30)
    model = register_uploaded_model(client, ds["id"], checkpoint=_checkpoint())
    done = client.post(f"/v1/models/{model['id']}/deletions", json={"sample_ids": ["user-1"], "reason": REASON})
    queued = client.post(
        f"/v1/models/{model['id']}/deletions", json={"sample_ids": ["user-2"]}, headers={"Idempotency-Key": "d-1"}
    )
    assert done.status_code == queued.status_code == 202
    v2_sha = _blob(app, _checkpoint())
    cache_sha = _blob(app, b"gradient cache of version 2")
    with app.state.sessionmaker() as s:  # what a worker's publication and cache refresh record
        v1 = s.scalars(select(ModelVersion).where(ModelVersion.model_id == model["id"])).one()
        v1.state = "purged"
        app.state.store.delete(v1.checkpoint_sha256)
        s.add(
            ModelVersion(
                model_id=model["id"],
                version=2,
                parent_version=1,
                checkpoint_sha256=v2_sha,
                checkpoint_size=1,
                applied_requests=[done.json()["id"]],
                grad_cache_sha256=cache_sha,
                state="available",
            )
        )
        s.execute(update(Model).where(Model.id == model["id"]).values(latest_version=2))
        s.execute(update(DeletionRequest).where(DeletionRequest.id == done.json()["id"]).values(status="succeeded"))
        s.execute(update(Tombstone).where(Tombstone.request_id == done.json()["id"]).values(state="deleted"))
        s.commit()
    return ds, model, {"v2": v2_sha, "cache": cache_sha, "done": done.json()["id"], "queued": queued.json()["id"]}


def _count(app, entity, *where) -> int:
    with app.state.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(entity).where(*where))


def test_removal_deletes_every_blob_and_row(client, app):
    ds, model, made = _model_with_history(client, app)
    mid = model["id"]
    dataset_blob = ds["sha256"]
    assert REASON in database_text(app)
    resp = client.delete(f"/v1/models/{mid}")
    assert resp.status_code == 204, resp.text
    assert not app.state.store.exists(made["v2"]) and not app.state.store.exists(made["cache"])
    assert stored_files(app.state.store.root) == [f"{dataset_blob[:2]}/{dataset_blob}"]  # only the data set's
    assert _count(app, Model, Model.id == mid) == 0
    assert _count(app, ModelVersion, ModelVersion.model_id == mid) == 0
    assert _count(app, DeletionRequest, DeletionRequest.model_id == mid) == 0
    assert _count(app, Tombstone, Tombstone.model_id == mid) == 0
    assert _count(app, IdempotencyRecord, IdempotencyRecord.scope == f"POST /v1/models/{mid}/deletions") == 0
    assert REASON not in database_text(app)
    for path in (f"/v1/models/{mid}", f"/v1/models/{mid}/versions", f"/v1/models/{mid}/versions/2/checkpoint"):
        assert client.get(path).status_code == 404, path
    for request_id in (made["done"], made["queued"]):
        assert client.get(f"/v1/deletions/{request_id}").status_code == 404
        assert client.get(f"/v1/deletions/{request_id}/receipt").status_code == 404
    assert client.delete(f"/v1/models/{mid}").status_code == 404
    assert client.get(f"/v1/datasets/{ds['id']}").status_code == 200  # the data set stays


def test_the_audit_log_keeps_hashes_and_counts(client, app):
    _, model, made = _model_with_history(client, app)
    assert client.delete(f"/v1/models/{model['id']}").status_code == 204
    entries = client.get("/v1/audit", params={"model_id": model["id"], "limit": 1000}).json()["items"]
    removed = [e for e in entries if e["event_type"] == "model.deleted"]
    assert len(removed) == 1
    assert removed[0]["refs"] == {"model_id": model["id"], "dataset_id": model["dataset_id"]}
    assert removed[0]["evidence"] == {
        "status": "ready",
        "versions": 2,
        "latest_version": 2,
        "checkpoint_sha256": made["v2"],
        "deletion_requests": 2,
        "cancelled_requests": 1,
    }
    assert [e["event_type"] for e in entries].count("deletion.requested") == 2  # earlier entries stay


def test_a_blob_another_model_uses_stays(client, app):
    app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=30)
    shared = _checkpoint()
    first = register_uploaded_model(client, ds["id"], checkpoint=shared, name="a")
    second = register_uploaded_model(client, ds["id"], checkpoint=shared, name="b")
    assert client.delete(f"/v1/models/{first['id']}").status_code == 204
    download = client.get(f"/v1/models/{second['id']}/versions/1/checkpoint")
    assert download.status_code == 200 and download.content == shared
    assert client.delete(f"/v1/models/{second['id']}").status_code == 204
    assert stored_files(app.state.store.root) == [f"{ds['sha256'][:2]}/{ds['sha256']}"]


def test_a_model_still_training_can_be_removed(client, app):
    jobs = app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=30)
    spec = {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "train": {"epochs": 1}}
    model = client.post("/v1/models", json=spec).json()
    assert jobs.training == [model["id"]]
    assert client.delete(f"/v1/models/{model['id']}").status_code == 204
    assert client.get(f"/v1/models/{model['id']}").status_code == 404


def test_roles_and_tenants(client, root_client, app, make_key):
    app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=30)
    model = register_uploaded_model(client, ds["id"], checkpoint=_checkpoint())
    for role in ("reader", "requester"):
        resp = client.delete(f"/v1/models/{model['id']}", headers=auth(make_key(role)))
        assert resp.status_code == 403 and resp.headers["content-type"].startswith("application/problem+json")
    before = snapshot(app)  # the keys made above are rows too
    assert root_client.delete(f"/v1/models/{model['id']}").status_code == 404  # another tenant's model
    assert client.delete("/v1/models/nope").status_code == 404
    assert snapshot(app) == before
    assert client.delete(f"/v1/models/{model['id']}", headers=auth(make_key("operator"))).status_code == 204


def test_uploads_after_removal_store_the_same_bytes_again(client, app):
    app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=30)
    ckpt = _checkpoint()
    first = register_uploaded_model(client, ds["id"], checkpoint=ckpt)
    assert client.delete(f"/v1/models/{first['id']}").status_code == 204
    again = register_uploaded_model(client, ds["id"], checkpoint=ckpt)
    assert client.get(f"/v1/models/{again['id']}/versions/1/checkpoint").content == ckpt
