"""Another tenant's objects answer 404 on every endpoint, even for that tenant's admin."""

import pytest

from tests.app.fakes import RecordingJobs
from tests.conftest import auth
from tests.helpers import register_uploaded_model, upload_digits


@pytest.mark.parametrize("backend", ["postgresql"])
def test_cross_tenant_access_is_404_everywhere(client, app, root_client):
    app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=20)
    model = register_uploaded_model(client, ds["id"])
    deletion = client.post(f"/v1/models/{model['id']}/deletions", json={"sample_ids": ["user-1"]}).json()
    key_id = client.get("/v1/keys").json()["items"][0]["id"]

    other = root_client.post("/v1/tenants", json={"name": "other-tenant-" + ds["id"][:8]}).json()
    other_key = root_client.post("/v1/keys", json={"name": "a", "role": "admin", "tenant_id": other["id"]}).json()
    headers = auth(other_key["key"])
    mid = model["id"]
    requests = [
        ("GET", f"/v1/datasets/{ds['id']}", None),
        ("GET", f"/v1/models/{mid}", None),
        ("GET", f"/v1/models/{mid}/versions", None),
        ("GET", f"/v1/models/{mid}/versions/1", None),
        ("GET", f"/v1/models/{mid}/versions/latest/checkpoint", None),
        ("POST", f"/v1/models/{mid}/deletions", {"sample_ids": ["user-2"]}),
        ("GET", f"/v1/deletions/{deletion['id']}", None),
        ("DELETE", f"/v1/keys/{key_id}", None),
        ("POST", "/v1/models", {"name": "m", "dataset_id": ds["id"], "architecture": {"name": "logreg", "config": {}}}),
    ]
    for method, url, body in requests:
        resp = client.request(method, url, json=body, headers=headers)
        assert resp.status_code == 404, (method, url, resp.status_code, resp.text)
    assert client.get(f"/v1/models/{mid}").status_code == 200
