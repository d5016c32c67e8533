"""Model registration (train / upload), versions and checkpoint downloads."""

import hashlib
import json

import numpy as np
from safetensors.numpy import save
from sqlalchemy import update

from app.core.db import utcnow
from app.models.orm import Model, ModelVersion
from tests.app.dbcount import row_counts
from tests.app.fakes import RecordingJobs
from tests.conftest import auth
from tests.helpers import LOGREG_SPEC, logreg_checkpoint, register_uploaded_model, upload_digits
from workers.engine import UnlearnConfig
from workers.jobs.updates import config_from

TRAIN = {"epochs": 2, "batch_size": 32, "lr": 0.01, "alpha": 0.0, "seed": 1}


def test_register_for_training_enqueues_after_commit(client, app):
    jobs = app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=100)
    body = {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "train": TRAIN}
    resp = client.post("/v1/models", json=body)
    assert resp.status_code == 202, resp.text
    model = resp.json()
    assert model["status"] == "training" and model["latest_version"] is None
    assert model["train"] == TRAIN
    assert resp.headers["location"] == f"/v1/models/{model['id']}"
    assert jobs.training == [model["id"]]
    assert client.get(f"/v1/models/{model['id']}/versions/latest").status_code == 404
    assert client.get(f"/v1/models/{model['id']}/versions").json() == {"items": [], "next_cursor": None, "limit": 50}


def test_unlearning_settings_are_stored_and_reach_the_worker_config(client, app):
    app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=100)
    settings = {"update": "reference", "lr": 0.003}
    body = {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "train": TRAIN, "unlearn": settings}
    resp = client.post("/v1/models", json=body)
    assert resp.status_code == 202, resp.text
    assert client.get(f"/v1/models/{resp.json()['id']}").json()["unlearn"] == settings
    with app.state.sessionmaker() as session:
        stored = session.get(Model, resp.json()["id"]).unlearn_defaults
    cfg = config_from(UnlearnConfig, stored)
    assert (cfg.update, cfg.lr, cfg.eta) == ("reference", 0.003, UnlearnConfig().eta)
    plain = client.post("/v1/models", json={"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "train": TRAIN})
    assert plain.json()["unlearn"] == {}


def test_upload_checkpoint_registers_version_1(client):
    ds = upload_digits(client, rows=100)
    ckpt = logreg_checkpoint()
    model = register_uploaded_model(client, ds["id"], checkpoint=ckpt)
    assert model["status"] == "ready" and model["latest_version"] == 1
    got = client.get(f"/v1/models/{model['id']}").json()
    assert got == model
    versions = client.get(f"/v1/models/{model['id']}/versions").json()["items"]
    assert [v["version"] for v in versions] == [1]
    sha = hashlib.sha256(ckpt).hexdigest()
    assert versions[0]["checkpoint_sha256"] == sha
    assert client.get(f"/v1/models/{model['id']}/versions/latest").json() == versions[0]

    url = f"/v1/models/{model['id']}/versions/1/checkpoint"
    full = client.get(url)
    assert full.status_code == 200 and full.content == ckpt
    assert full.headers["etag"] == f'"{sha}"'
    assert client.get(url, headers={"If-None-Match": f'"{sha}"'}).status_code == 304
    part = client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == ckpt[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(ckpt)}"
    tail = client.get(url, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == ckpt[-5:]
    bad = client.get(url, headers={"Range": f"bytes={len(ckpt)}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(ckpt)}"
    stale = client.get(url, headers={"Range": "bytes=0-3", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == ckpt


def test_purged_version_is_gone(client, app):
    ds = upload_digits(client, rows=100)
    model = register_uploaded_model(client, ds["id"])
    with app.state.sessionmaker() as s:  # what a worker's publishing transaction does
        v1 = s.query(ModelVersion).filter_by(model_id=model["id"], version=1).one()
        s.add(
            ModelVersion(
                model_id=model["id"],
                version=2,
                parent_version=1,
                checkpoint_sha256=v1.checkpoint_sha256,
                checkpoint_size=v1.checkpoint_size,
                applied_requests=["r"],
            )
        )
        s.execute(update(ModelVersion).where(ModelVersion.id == v1.id).values(state="purged", purged_at=utcnow()))
        s.execute(update(Model).where(Model.id == model["id"]).values(latest_version=2))
        s.commit()
    versions = client.get(f"/v1/models/{model['id']}/versions").json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    gone = client.get(f"/v1/models/{model['id']}/versions/1/checkpoint")
    assert gone.status_code == 410 and gone.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"/v1/models/{model['id']}/versions/latest/checkpoint").status_code == 200
    assert client.get(f"/v1/models/{model['id']}/versions/latest").json()["version"] == 2


def _upload(client, spec: dict, ckpt: bytes):
    files = {"checkpoint": ("m.safetensors", ckpt, "application/octet-stream")}
    return client.post("/v1/models", data={"spec": json.dumps(spec)}, files=files)


def test_mismatched_checkpoints_are_422_and_change_nothing(client, app):
    ds = upload_digits(client, rows=100)
    spec = {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC}
    before = row_counts(app)
    wrong = save({"linear.weight": np.zeros((10, 63), np.float32), "extra": np.zeros(1, np.float32)})
    resp = _upload(client, spec, wrong)
    assert resp.status_code == 422
    problem = resp.json()
    assert problem["missing"] == ["linear.bias"] and problem["unexpected"] == ["extra"]
    assert problem["misshaped"][0]["tensor"] == "linear.weight"
    assert _upload(client, spec, logreg_checkpoint()[:-3]).status_code == 422
    assert _upload(client, spec, b"not safetensors").status_code == 422
    assert _upload(client, spec, b"").status_code == 422
    half = save({"linear.weight": np.zeros((10, 64), np.float64), "linear.bias": np.zeros(10, np.float32)})
    assert _upload(client, spec, half).status_code == 422
    assert row_counts(app) == before


def test_bad_specs(client, app):
    ds = upload_digits(client, rows=100)
    before = row_counts(app)
    cases = [
        {"name": "m", "dataset_id": ds["id"], "architecture": {"name": "nope", "config": {}}},
        {
            "name": "m",
            "dataset_id": ds["id"],
            "architecture": {"name": "logreg", "config": {"in_features": 10, "num_classes": 10}},
        },
        {
            "name": "m",
            "dataset_id": ds["id"],
            "architecture": {"name": "logreg", "config": {"in_features": 64, "num_classes": 5}},
        },
        {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "train": {"epochs": 0}},
        {"name": "m", **LOGREG_SPEC, "train": TRAIN},
        {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "unlearn": {"update": "newton"}},
        {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "unlearn": {"lr": -1}},
        {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "unlearn": {"hessian": True}},
    ]
    for body in cases:
        resp = client.post("/v1/models", json=body)
        assert resp.status_code == 422, (body, resp.text)
    assert client.post("/v1/models", json={"name": "m", "dataset_id": "nope", **LOGREG_SPEC}).status_code == 404
    assert client.post("/v1/models", content=b"{", headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/v1/models", content=b"x", headers={"content-type": "text/plain"}).status_code == 422
    assert (
        _upload(
            client, {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "train": TRAIN}, logreg_checkpoint()
        ).status_code
        == 422
    )
    assert row_counts(app) == before


def test_unknown_other_tenant_and_roles(client, root_client, make_key):
    ds = upload_digits(client, rows=100)
    model = register_uploaded_model(client, ds["id"])
    mid = model["id"]
    for path in (
        f"/v1/models/{mid}",
        f"/v1/models/{mid}/versions",
        f"/v1/models/{mid}/versions/1",
        f"/v1/models/{mid}/versions/1/checkpoint",
    ):
        assert root_client.get(path).status_code == 404, path
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get(f"/v1/models/{mid}/versions/7").status_code == 404
    assert client.get(f"/v1/models/{mid}/versions/abc").status_code == 422
    reader = make_key("reader")
    assert client.get(f"/v1/models/{mid}/versions/1/checkpoint", headers=auth(reader)).status_code == 200
    resp = client.post("/v1/models", json={"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC}, headers=auth(reader))
    assert resp.status_code == 403
    assert client.get(f"/v1/models/{mid}", headers={"Authorization": "Bearer x"}).status_code == 401


def test_idempotent_training_registration(client, app):
    jobs = app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=100)
    body = {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "train": TRAIN}
    first = client.post("/v1/models", json=body, headers={"Idempotency-Key": "m-1"})
    before = row_counts(app)
    again = client.post("/v1/models", json=body, headers={"Idempotency-Key": "m-1"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() and again.headers["location"] == first.headers["location"]
    assert len(jobs.training) == 1
    assert client.post("/v1/models", json={**body, "name": "x"}, headers={"Idempotency-Key": "m-1"}).status_code == 422
    assert row_counts(app) == before


def test_removal_policy_defaults_and_validation(client, app):
    app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=100)
    trained = client.post("/v1/models", json={"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "train": TRAIN})
    assert trained.json()["policy"] == {
        "escalate": "retrain", "consolidate_after_deletions": 100, "consolidate_after_hours": 24.0,
    }  # fmt: skip
    unlearn = {"update": "targeted", "escalate": "report", "consolidate_after_deletions": 5, "target_auc": 0.55}
    custom = client.post(
        "/v1/models", json={"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC, "train": TRAIN, "unlearn": unlearn}
    )
    assert custom.status_code == 202, custom.text
    assert custom.json()["unlearn"] == unlearn
    assert custom.json()["policy"] == {
        "escalate": "report",
        "consolidate_after_deletions": 5,
        "consolidate_after_hours": 24.0,
    }
    uploaded = register_uploaded_model(client, ds["id"])
    assert uploaded["policy"] == {
        "escalate": "report",
        "consolidate_after_deletions": None,
        "consolidate_after_hours": None,
    }

    before = row_counts(app)
    spec = {"name": "m", "dataset_id": ds["id"], **LOGREG_SPEC}
    for refused in ({"escalate": "retrain"}, {"consolidate_after_hours": 2}, {"consolidate_after_deletions": 10}):
        resp = _upload(client, {**spec, "unlearn": refused}, logreg_checkpoint())
        assert resp.status_code == 422 and "recipe" in resp.json()["detail"], resp.text
    for bad in ({"escalate": "panic"}, {"consolidate_after_deletions": 0}, {"consolidate_after_hours": 0},
                {"consolidate_after_hours": -1}, {"update": "magic"}):  # fmt: skip
        resp = client.post("/v1/models", json={**spec, "train": TRAIN, "unlearn": bad})
        assert resp.status_code == 422, (bad, resp.text)
    assert row_counts(app) == before
    assert _upload(client, {**spec, "unlearn": {"escalate": "report"}}, logreg_checkpoint()).status_code == 201
