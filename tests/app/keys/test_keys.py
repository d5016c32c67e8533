"""Tenants, API keys, roles and the bootstrap admin."""

from tests.conftest import auth


def test_bootstrap_admin_can_list_keys(root_client):
    resp = root_client.get("/v1/keys")
    assert resp.status_code == 200
    assert any(k["name"] == "bootstrap admin" for k in resp.json()["items"])


def test_missing_and_bad_key_are_401(client):
    resp = client.get("/v1/keys", headers={"Authorization": ""})
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/keys", headers=auth("unl_nope")).status_code == 401


def test_created_key_works_and_revoked_key_is_refused(client, make_key):
    raw = make_key("admin")
    assert client.get("/v1/keys", headers=auth(raw)).status_code == 200
    key_id = next(k["id"] for k in client.get("/v1/keys").json()["items"] if raw.startswith(k["prefix"]))
    assert client.delete(f"/v1/keys/{key_id}").status_code == 204
    assert client.get("/v1/keys", headers=auth(raw)).status_code == 401


def test_wrong_role_is_403(client, make_key):
    raw = make_key("operator")
    resp = client.get("/v1/keys", headers=auth(raw))
    assert resp.status_code == 403
    assert resp.json()["status"] == 403


def test_tenant_admin_cannot_create_tenants_or_touch_other_tenants(client, root_client):
    assert client.post("/v1/tenants", json={"name": "x-other"}).status_code == 403
    root_keys = root_client.get("/v1/keys").json()["items"]
    assert client.delete(f"/v1/keys/{root_keys[0]['id']}").status_code == 404
    assert client.post("/v1/keys", json={"name": "k", "role": "reader", "tenant_id": "nope"}).status_code == 404


def test_key_idempotency_replay_hides_the_secret(client):
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/v1/keys", json={"name": "k", "role": "reader"}, headers=headers)
    again = client.post("/v1/keys", json={"name": "k", "role": "reader"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["key"] and again.json()["key"] is None
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/keys", json={"name": "k2", "role": "reader"}, headers=headers)
    assert other.status_code == 422
