"""Data set upload and validation."""

import numpy as np
from safetensors.numpy import save

from tests.app.dbcount import row_counts
from tests.app.fakes import RecordingJobs
from tests.conftest import auth
from tests.helpers import digits_ids, digits_safetensors, upload_dataset, upload_digits


def test_register_and_get_digits(client):
    body = upload_digits(client)
    assert body["num_rows"] == 1497 and body["num_holdout"] == 300
    assert body["feature_shape"] == [64] and body["num_classes"] == 10
    assert body["deleted_count"] == 0 and len(body["sha256"]) == 64
    got = client.get(f"/v1/datasets/{body['id']}")
    assert got.status_code == 200 and got.json() == body


def test_default_ids(client):
    resp = upload_dataset(client, digits_safetensors(rows=10, holdout=False))
    assert resp.status_code == 201, resp.text
    assert resp.json()["num_holdout"] == 0


def _bad(client, app, data: bytes, ids: str | None = None, expect: int = 422) -> dict:
    before = row_counts(app)
    resp = upload_dataset(client, data, ids=ids)
    assert resp.status_code == expect, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert row_counts(app) == before
    return resp.json()


def test_truncated_and_garbage_files(client, app):
    data = digits_safetensors(rows=20)
    assert "safetensors" in _bad(client, app, data[:-10])["detail"]
    assert "safetensors" in _bad(client, app, b"PK\x03\x04 definitely a zip")["detail"]
    assert "safetensors" in _bad(client, app, b"")["detail"]


def test_wrong_names_dtypes_shapes_and_labels(client, app):
    x = np.zeros((4, 3), np.float32)
    y = np.arange(4, dtype=np.int64)
    assert "missing tensors: labels" in _bad(client, app, save({"features": x}))["detail"]
    assert "unexpected tensors: extra" in _bad(client, app, save({"features": x, "labels": y, "extra": y}))["detail"]
    assert "int64" in _bad(client, app, save({"features": x, "labels": y.astype(np.int32)}))["detail"]
    assert "float" in _bad(client, app, save({"features": x.astype(np.int32), "labels": y}))["detail"]
    assert "rows" in _bad(client, app, save({"features": x, "labels": y[:3]}))["detail"]
    assert ">= 0" in _bad(client, app, save({"features": x, "labels": y - 2}))["detail"]
    half = save({"features": x, "labels": y, "holdout_features": x})
    assert "together" in _bad(client, app, half)["detail"]
    bad_holdout = save(
        {"features": x, "labels": y, "holdout_features": np.zeros((2, 5), np.float32), "holdout_labels": y[:2]}
    )
    assert "holdout_features" in _bad(client, app, bad_holdout)["detail"]


def test_bad_ids(client, app):
    data = digits_safetensors(rows=5, holdout=False)
    assert "lines" in _bad(client, app, data, ids=digits_ids(4))["detail"]
    assert _bad(client, app, data, ids="a\nb\nc\nd\na\n")["duplicate_ids"] == ["a"]
    assert "empty" in _bad(client, app, data, ids="a\nb\n\nd\ne\n")["detail"]


def test_missing_parts(client, app):
    before = row_counts(app)
    resp = client.post("/v1/datasets", data={"name": "x"})
    assert resp.status_code == 422
    resp = client.post("/v1/datasets", json={"name": "x"})
    assert resp.status_code == 422
    assert row_counts(app) == before


def test_too_large_upload_is_413(client, app, settings):
    app.state.settings = settings.model_copy(update={"max_dataset_bytes": 100})
    _bad(client, app, digits_safetensors(rows=5), expect=413)


def test_unknown_and_other_tenant_dataset_is_404(client, root_client):
    body = upload_digits(client, rows=10)
    assert client.get("/v1/datasets/nope").status_code == 404
    assert root_client.get(f"/v1/datasets/{body['id']}").status_code == 404


def test_roles(client, make_key):
    reader = make_key("reader")
    resp = upload_dataset(client, digits_safetensors(rows=5), headers=auth(reader))
    assert resp.status_code == 403
    body = upload_digits(client, rows=10)
    assert client.get(f"/v1/datasets/{body['id']}", headers=auth(reader)).status_code == 200


def test_idempotent_upload(client, app):
    data = digits_safetensors(rows=10)
    headers = {"Idempotency-Key": "ds-1"}
    first = upload_dataset(client, data, headers=headers)
    before = row_counts(app)
    again = upload_dataset(client, data, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert row_counts(app) == before
    other = upload_dataset(client, digits_safetensors(rows=11), headers=headers)
    assert other.status_code == 422
    assert row_counts(app) == before


def test_deleted_count_counts_distinct_deleted_rows(client, app):
    from app.deletions.orm import Tombstone
    from tests.helpers import register_uploaded_model

    app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=30)
    models = [register_uploaded_model(client, ds["id"], name=f"m{i}") for i in range(2)]
    for model, ids in zip(models, (["user-1", "user-2"], ["user-2", "user-3"]), strict=True):
        resp = client.post(f"/v1/models/{model['id']}/deletions", json={"sample_ids": ids})
        assert resp.status_code == 202
    assert client.get(f"/v1/datasets/{ds['id']}").json()["deleted_count"] == 0  # pending rows are not deleted
    with app.state.sessionmaker() as s:  # what publication does
        s.query(Tombstone).filter(Tombstone.model_id.in_([m["id"] for m in models])).update({"state": "deleted"})
        s.commit()
    assert client.get(f"/v1/datasets/{ds['id']}").json()["deleted_count"] == 3
