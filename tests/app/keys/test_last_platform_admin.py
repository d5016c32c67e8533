"""The last platform admin key (an admin key of the default tenant) cannot be revoked: 409, nothing written.
Each test runs on a database of its own, so the bootstrap admin starts as the only platform admin."""

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.core.migrate import upgrade
from app.core.security import DEFAULT_TENANT_ID
from app.keys import repository
from app.keys.orm import ApiKey
from app.main import create_app
from tests.app.written import snapshot
from tests.conftest import auth
from tests.pgdb import fresh_database


@pytest.fixture
def lone_app(backend: str, settings, tmp_path: Path):
    """An app on a fresh database of the test's backend: the bootstrap key is its one platform admin."""

    def make(url: str):
        return create_app(settings.model_copy(update={"database_url": url}))

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'lone.db'}"
        upgrade(url)
        yield make(url)
        return
    with fresh_database("unlearn_keys") as url:
        app = make(url)
        yield app
        app.state.engine.dispose()


@pytest.fixture
def root(lone_app, admin_key: str) -> Iterator[TestClient]:
    with TestClient(lone_app, headers=auth(admin_key)) as client:
        yield client


def _key_id(client: TestClient, raw: str) -> str:
    return next(k["id"] for k in client.get("/v1/keys").json()["items"] if raw.startswith(k["prefix"]))


def _new_admin(root: TestClient, tenant_id: str | None = None) -> tuple[str, str]:
    resp = root.post("/v1/keys", json={"name": "admin", "role": "admin", "tenant_id": tenant_id})
    assert resp.status_code == 201, resp.text
    return resp.json()["key"], resp.json()["id"]


def test_the_only_platform_admin_key_cannot_be_revoked(root, lone_app, admin_key):
    own = _key_id(root, admin_key)
    before = snapshot(lone_app)
    resp = root.delete(f"/v1/keys/{own}")
    assert resp.status_code == 409, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "last platform admin key" in resp.json()["detail"] and resp.json()["key_id"] == own
    assert snapshot(lone_app) == before
    assert root.get("/v1/keys").status_code == 200  # still works


def test_a_platform_admin_can_go_once_another_exists(root, admin_key):
    other_raw, other_id = _new_admin(root)
    reader = root.post("/v1/keys", json={"name": "r", "role": "reader"}).json()["id"]
    assert root.delete(f"/v1/keys/{reader}").status_code == 204  # other roles of the default tenant: as before
    assert root.delete(f"/v1/keys/{_key_id(root, admin_key)}").status_code == 204
    assert root.get("/v1/keys").status_code == 401
    other = {"headers": auth(other_raw)}
    assert root.delete(f"/v1/keys/{other_id}", **other).status_code == 409  # now the last one
    assert root.get("/v1/keys", **other).status_code == 200
    assert root.delete(f"/v1/keys/{other_id}", **other).status_code == 409


def test_revoked_platform_admins_do_not_count(root, lone_app, admin_key):
    _, other_id = _new_admin(root)
    with lone_app.state.sessionmaker() as s:  # a platform admin key revoked earlier
        s.execute(update(ApiKey).where(ApiKey.id == other_id).values(revoked_at=ApiKey.created_at))
        s.commit()
    assert root.delete(f"/v1/keys/{_key_id(root, admin_key)}").status_code == 409
    assert root.delete(f"/v1/keys/{other_id}").status_code == 204  # already revoked: nothing to refuse


def test_a_tenant_may_lose_its_last_admin_key(root):
    tenant = root.post("/v1/tenants", json={"name": "t1"}).json()
    raw, key_id = _new_admin(root, tenant["id"])
    assert root.delete(f"/v1/keys/{key_id}", headers=auth(raw)).status_code == 204  # a platform admin can make more
    assert root.post("/v1/keys", json={"name": "a", "role": "admin", "tenant_id": tenant["id"]}).status_code == 201


def test_two_platform_admins_revoking_each_other_at_once_leave_one(root, lone_app, admin_key, monkeypatch):
    other_raw, other_id = _new_admin(root)
    own_id = _key_id(root, admin_key)
    # Each request waits after its count for the other to count too (up to 2 s): without the tenant row lock
    # both would count one admin left and both revocations would commit.
    barrier = threading.Barrier(2, timeout=2)
    counted = repository.count_active_keys

    def count_then_wait(session, **kwargs):
        n = counted(session, **kwargs)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return n

    monkeypatch.setattr(repository, "count_active_keys", count_then_wait)
    codes: dict[str, int] = {}
    threads = [
        threading.Thread(target=lambda: codes.update(a=root.delete(f"/v1/keys/{other_id}").status_code)),
        threading.Thread(
            target=lambda: codes.update(b=root.delete(f"/v1/keys/{own_id}", headers=auth(other_raw)).status_code)
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes.values()) == [204, 409], codes
    with lone_app.state.sessionmaker() as s:
        assert repository.count_active_keys(s, tenant_id=DEFAULT_TENANT_ID, role="admin") == 1
