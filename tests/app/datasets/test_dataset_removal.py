"""DELETE /v1/datasets/{id}: the blob and the rows (sample ids) are gone; a data set that models were trained on
answers 409 naming them until they are removed; the audit log keeps the blob's sha256."""

import secrets
import threading

from safetensors.numpy import save
from sqlalchemy import func, select

from app.datasets.orm import Dataset, DatasetRow
from tests.app.fakes import RecordingJobs
from tests.app.written import database_text, snapshot, stored_files
from tests.conftest import auth
from tests.helpers import (
    LOGREG_SPEC,
    digits_arrays,
    digits_ids,
    logreg_checkpoint,
    register_uploaded_model,
    upload_dataset,
)

PREFIX = "subject-c41d-"  # sample ids that live only in this data set's rows


def _unique_file(rows: int = 20) -> bytes:
    """A data set file no other test uploads (the databases are shared by the session, and a blob that another
    data set names must stay)."""
    x, y, hx, hy = digits_arrays()
    x = x[:rows].copy()
    x[0, 0] = secrets.randbelow(2**30) / 2**30
    return save({"features": x, "labels": y[:rows], "holdout_features": hx, "holdout_labels": hy})


def _dataset(client, data: bytes | None = None, *, rows: int = 20) -> dict:
    resp = upload_dataset(client, data or _unique_file(rows), ids=digits_ids(rows, prefix=PREFIX))
    assert resp.status_code == 201, resp.text
    return resp.json()


def _checkpoint() -> bytes:
    return logreg_checkpoint(seed=secrets.randbelow(2**31))


def test_removal_deletes_the_blob_and_the_rows(client, app):
    ds = _dataset(client)
    assert PREFIX in database_text(app) and app.state.store.exists(ds["sha256"])
    assert client.delete(f"/v1/datasets/{ds['id']}").status_code == 204
    assert not app.state.store.exists(ds["sha256"])
    assert stored_files(app.state.store.root) == []
    assert PREFIX not in database_text(app)
    with app.state.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(DatasetRow).where(DatasetRow.dataset_id == ds["id"])) == 0
        assert s.get(Dataset, ds["id"]) is None
    assert client.get(f"/v1/datasets/{ds['id']}").status_code == 404
    assert client.delete(f"/v1/datasets/{ds['id']}").status_code == 404
    entries = client.get("/v1/audit", params={"limit": 1000}).json()["items"]
    removed = [e for e in entries if e["event_type"] == "dataset.deleted"]
    assert [e["refs"] for e in removed] == [{"dataset_id": ds["id"]}]
    assert removed[0]["evidence"] == {"sha256": ds["sha256"], "num_rows": 20, "num_holdout": 300}


def test_a_data_set_with_models_is_409_until_they_are_removed(client, app):
    app.state.jobs = RecordingJobs()
    ds = _dataset(client)
    models = [register_uploaded_model(client, ds["id"], checkpoint=_checkpoint(), name=f"m{i}")["id"] for i in range(2)]
    training = client.post("/v1/models", json={"name": "t", "dataset_id": ds["id"], **LOGREG_SPEC}).json()["id"]
    before = snapshot(app)
    resp = client.delete(f"/v1/datasets/{ds['id']}")
    assert resp.status_code == 409 and resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["model_ids"] == [*models, training]
    assert models[0] in resp.json()["detail"]
    assert snapshot(app) == before
    for model_id in [*models, training]:
        assert client.delete(f"/v1/models/{model_id}").status_code == 204
    assert client.delete(f"/v1/datasets/{ds['id']}").status_code == 204
    assert stored_files(app.state.store.root) == []


def test_a_blob_another_data_set_uses_stays(client, app):
    data = _unique_file()
    first, second = _dataset(client, data), _dataset(client, data)
    assert first["sha256"] == second["sha256"]
    assert client.delete(f"/v1/datasets/{first['id']}").status_code == 204
    assert app.state.store.exists(second["sha256"])
    assert client.get(f"/v1/datasets/{second['id']}").json()["num_rows"] == 20
    assert client.delete(f"/v1/datasets/{second['id']}").status_code == 204
    assert not app.state.store.exists(second["sha256"])


def test_roles_and_tenants(client, root_client, app, make_key):
    ds = _dataset(client)
    keys = {role: make_key(role) for role in ("reader", "requester", "operator")}
    before = snapshot(app)
    for role in ("reader", "requester"):
        assert client.delete(f"/v1/datasets/{ds['id']}", headers=auth(keys[role])).status_code == 403
    assert root_client.delete(f"/v1/datasets/{ds['id']}").status_code == 404  # another tenant's data set
    assert snapshot(app) == before
    assert client.delete(f"/v1/datasets/{ds['id']}", headers=auth(keys["operator"])).status_code == 204


def test_a_model_registered_while_its_data_set_is_removed(client, app, backend, monkeypatch):
    """A registration that read the data set just before its removal: never both succeed. On PostgreSQL the
    registration's insert does not wait for the removal's row lock and commits first: the removal's DELETE then
    fails on the foreign key (409). On SQLite the insert waits for the removal's write lock and then fails on the
    foreign key (404)."""
    import workers.engine  # noqa: F401 - loaded before the race, so the registration is quick
    from app.datasets import repository

    app.state.jobs = RecordingJobs()
    ds = _dataset(client)
    checked, release = threading.Event(), threading.Event()
    original = repository.model_ids

    def slow_model_ids(session, **kwargs):
        found = original(session, **kwargs)
        checked.set()
        release.wait(3.0)  # the registration runs while the removal holds the row
        return found

    monkeypatch.setattr(repository, "model_ids", slow_model_ids)
    codes: dict[str, int] = {}
    remover = threading.Thread(
        target=lambda: codes.update(remove=client.delete(f"/v1/datasets/{ds['id']}").status_code)
    )
    remover.start()
    assert checked.wait(10)
    spec = {"name": "late", "dataset_id": ds["id"], **LOGREG_SPEC}
    codes["register"] = client.post("/v1/models", json=spec).status_code
    release.set()
    remover.join(30)
    expected = {"remove": 409, "register": 202} if backend == "postgresql" else {"remove": 204, "register": 404}
    assert codes == expected
    exists = client.get(f"/v1/datasets/{ds['id']}").status_code == 200
    assert exists == (codes["remove"] == 409)
