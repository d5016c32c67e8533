"""Idempotency-Key expiry and abandoned claims; the bootstrap admin key across restarts."""

from datetime import timedelta

from sqlalchemy import func, select, update

from app.core.db import utcnow
from app.core.security import hash_key
from app.keys import service
from app.keys.idempotency import fingerprint
from app.keys.orm import ApiKey, IdempotencyRecord
from app.keys.schemas import KeyCreate


def _age_records(app, seconds: int, *, pending_only: bool = False) -> None:
    with app.state.sessionmaker() as s:
        stmt = update(IdempotencyRecord).values(created_at=utcnow() - timedelta(seconds=seconds))
        if pending_only:
            stmt = stmt.where(IdempotencyRecord.status_code.is_(None))
        s.execute(stmt)
        s.commit()


def test_key_expires_after_ttl(client, app, settings):
    headers = {"Idempotency-Key": "ttl-1"}
    first = client.post("/v1/keys", json={"name": "a", "role": "reader"}, headers=headers)
    _age_records(app, settings.idempotency_ttl_s + 60)
    second = client.post("/v1/keys", json={"name": "b", "role": "reader"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] != first.json()["id"] and second.json()["key"]


def test_abandoned_claim_is_taken_over(client, app, settings, tenant):
    fp = fingerprint(KeyCreate(name="a", role="reader").model_dump(mode="json"))
    with app.state.sessionmaker() as s:  # a claim left by a process that died mid-request
        s.add(IdempotencyRecord(tenant_id=tenant["id"], scope="POST /v1/keys", key="dead-1", body_hash=fp))
        s.commit()
    headers = {"Idempotency-Key": "dead-1"}
    assert client.post("/v1/keys", json={"name": "a", "role": "reader"}, headers=headers).status_code == 409
    _age_records(app, settings.idempotency_inflight_s + 5, pending_only=True)
    assert client.post("/v1/keys", json={"name": "a", "role": "reader"}, headers=headers).status_code == 201


def test_bad_idempotency_key_is_400(client):
    resp = client.post("/v1/keys", json={"name": "a", "role": "reader"}, headers={"Idempotency-Key": "x" * 300})
    assert resp.status_code == 400


def test_bootstrap_is_idempotent(app, root_client, admin_key):
    for _ in range(3):
        with app.state.sessionmaker() as s:
            service.ensure_bootstrap_admin(s, raw_key=admin_key)
    with app.state.sessionmaker() as s:
        count = s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.key_hash == hash_key(admin_key)))
    assert count == 1
    assert root_client.get("/v1/keys").status_code == 200
