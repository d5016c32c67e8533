"""The API on an S3-compatible object store (UNLEARN_STORAGE_URL=s3://...), against a real SeaweedFS server:
uploads become objects, downloads are proxied with ETag, Range and If-None-Match, removals delete the objects,
readiness checks the bucket, and the local blob folder is never used."""

import hashlib
import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from safetensors.numpy import save
from sqlalchemy import update

from app.core.db import utcnow
from app.models.orm import Model, ModelVersion
from tests.helpers import digits_arrays, digits_ids, logreg_checkpoint, register_uploaded_model, upload_dataset

pytestmark = pytest.mark.parametrize("storage", ["s3"])


def upload_digits(client, *, rows: int) -> dict:
    """The first `rows` digits with one feature of noise: a blob no other test in the session stores (a blob that
    another data set also names is kept when one of them is removed)."""
    x, y, hx, hy = digits_arrays()
    x = x[:rows].copy()
    x[0, 0] = float(int.from_bytes(os.urandom(4), "big"))
    resp = upload_dataset(
        client,
        save({"features": x, "labels": y[:rows], "holdout_features": hx, "holdout_labels": hy}),
        ids=digits_ids(rows),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_uploads_are_objects_and_downloads_are_proxied_by_range(client, settings, object_store, s3_prefix):
    ds = upload_digits(client, rows=100)
    ckpt = logreg_checkpoint(seed=int.from_bytes(os.urandom(2), "big"))  # a blob no other test stored
    sha = hashlib.sha256(ckpt).hexdigest()
    model = register_uploaded_model(client, ds["id"], checkpoint=ckpt)
    assert object_store.shas(s3_prefix) == {ds["sha256"], sha}
    assert object_store.keys(s3_prefix) == {f"{ds['sha256'][:2]}/{ds['sha256']}", f"{sha[:2]}/{sha}"}
    assert not Path(settings.storage_dir).exists(), "nothing is written to the local blob folder"
    assert list((settings.scratch_dir / "tmp").iterdir()) == [], "the spooled uploads are gone"

    url = f"/v1/models/{model['id']}/versions/1/checkpoint"
    full = client.get(url)
    assert full.status_code == 200 and full.content == ckpt and full.headers["etag"] == f'"{sha}"'
    assert full.headers["content-length"] == str(len(ckpt))
    assert client.get(url, headers={"If-None-Match": f'"{sha}"'}).status_code == 304
    part = client.get(url, headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == ckpt[10:100]
    assert part.headers["content-range"] == f"bytes 10-99/{len(ckpt)}"
    tail = client.get(url, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == ckpt[-7:]
    bad = client.get(url, headers={"Range": f"bytes={len(ckpt)}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(ckpt)}"
    assert list((settings.scratch_dir / "cache").rglob("*")) == [], "downloads stream; the API keeps no copies"

    ready = client.get("/readyz").json()
    assert ready["checks"]["storage"] == "ok"


def test_a_purged_version_answers_410_and_a_vanished_object_too(client, app, object_store, s3_prefix):
    ds = upload_digits(client, rows=100)
    ckpt = logreg_checkpoint(seed=int.from_bytes(os.urandom(2), "big"))
    model = register_uploaded_model(client, ds["id"], checkpoint=ckpt)
    sha = hashlib.sha256(ckpt).hexdigest()
    url = f"/v1/models/{model['id']}/versions/1/checkpoint"
    assert client.get(url).status_code == 200
    # The object goes between the database read and the GET (a purge running at that moment): 410, never a 500.
    object_store.client().delete_object(Bucket=object_store.bucket, Key=f"{s3_prefix}/{sha[:2]}/{sha}")
    gone = client.get(url)
    assert gone.status_code == 410 and gone.headers["content-type"].startswith("application/problem+json")
    with app.state.sessionmaker() as s:
        s.execute(
            update(ModelVersion).where(ModelVersion.model_id == model["id"]).values(state="purged", purged_at=utcnow())
        )
        s.execute(update(Model).where(Model.id == model["id"]).values(latest_version=1))
        s.commit()
    assert client.get(url).status_code == 410


def test_removing_a_model_and_its_data_set_deletes_their_objects(client, object_store, s3_prefix):
    ds = upload_digits(client, rows=100)
    ckpt = logreg_checkpoint(seed=int.from_bytes(os.urandom(2), "big"))
    model = register_uploaded_model(client, ds["id"], checkpoint=ckpt)
    assert len(object_store.shas(s3_prefix)) == 2
    assert client.delete(f"/v1/models/{model['id']}").status_code == 204
    assert object_store.shas(s3_prefix) == {ds["sha256"]}
    assert client.delete(f"/v1/datasets/{ds['id']}").status_code == 204
    assert object_store.shas(s3_prefix) == set()


def test_readiness_reports_an_unreachable_bucket(client, app, monkeypatch):
    monkeypatch.setattr(app.state.store, "bucket", "no-such-bucket")
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.json()["checks"]["storage"] == "error"


def test_the_api_sweeps_stale_uploads_from_its_scratch_folder_at_start(app, settings):
    tmp = settings.scratch_dir / "tmp"  # the API's own: no worker's reconciler sweeps it
    stale, fresh = tmp / "upload-stale", tmp / "upload-fresh"
    stale.write_bytes(b"left by a crashed API process")
    fresh.write_bytes(b"an upload in flight")
    old = time.time() - settings.tmp_max_age_s - 60
    os.utime(stale, (old, old))
    with TestClient(app):
        pass
    assert not stale.exists() and fresh.exists()
