"""What a deletion request leaves in the database and hands out: keyed hashes of its ids, never the ids; a
commitment salted with a salt that only the requester is shown (response, status, receipt), never stored."""

import pytest
from sqlalchemy import select, text
from unlearn_client.verify.checks import verify_receipt

from app.audit.commitments import check_sample_ids
from app.audit.signing import load_public_key
from app.core.db import Base
from app.core.idhash import get_id_hasher, is_hashed
from app.deletions.orm import DeletionRequest, Tombstone
from tests.app.fakes import RecordingJobs
from tests.helpers import register_uploaded_model, upload_digits

IDS = ["user-1", "user-12"]


@pytest.fixture
def jobs(app) -> RecordingJobs:
    app.state.jobs = RecordingJobs()
    return app.state.jobs


def _dump(app) -> str:
    """Every row of every table, as text."""
    out = []
    with app.state.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            out += [repr(tuple(row)) for row in conn.execute(select(table))]
    return "\n".join(out)


def test_a_request_stores_keyed_hashes_and_opens_with_its_salt(app, client, jobs, tenant):
    dataset = upload_digits(client, rows=60)
    model = register_uploaded_model(client, dataset["id"])
    headers = {"Idempotency-Key": "private-1"}
    resp = client.post(f"/v1/models/{model['id']}/deletions", json={"sample_ids": IDS}, headers=headers)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert check_sample_ids(IDS, body["commitment_salt"], body["sample_ids_sha256"])
    assert not check_sample_ids(IDS[:1], body["commitment_salt"], body["sample_ids_sha256"])
    status = client.get(resp.headers["location"]).json()
    for key in ("sample_ids_sha256", "commitment_salt"):
        assert status[key] == body[key]
    replay = client.post(f"/v1/models/{model['id']}/deletions", json={"sample_ids": IDS}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == body

    hashed = get_id_hasher().hash_ids(tenant["id"], IDS)
    with app.state.sessionmaker() as session:
        request = session.get(DeletionRequest, body["id"])
        stones = session.scalars(select(Tombstone).where(Tombstone.request_id == body["id"])).all()
    assert request.sample_ids == hashed and request.sample_ids_sha256 == body["sample_ids_sha256"]
    assert sorted(t.sample_id for t in stones) == sorted(hashed) and all(is_hashed(t.sample_id) for t in stones)

    dump = _dump(app)
    assert body["commitment_salt"] not in dump, "the salt is never stored, not even for the replay"
    with app.state.engine.connect() as conn:
        query = text("SELECT response_body FROM idempotency_records WHERE key = 'private-1'")
        kept = [r[0] for r in conn.execute(query)]
    assert kept and "user-1" not in kept[0]

    receipt = client.get(f"{resp.headers['location']}/receipt").json()
    assert "sample_ids" not in receipt["request"] and "user-12" not in str(receipt)
    assert receipt["request"]["sample_ids_sha256"] == body["sample_ids_sha256"]
    assert receipt["request"]["commitment_salt"] == body["commitment_salt"]
    verify_receipt(receipt, load_public_key(client.get("/v1/audit/public-key").json()["public_key_pem"]))
    logged = client.get("/v1/audit", params={"deletion_id": body["id"], "limit": 1000}).json()["items"]
    assert logged[0]["evidence"]["sample_ids_sha256"] == body["sample_ids_sha256"]


def test_a_request_from_before_salted_commitments_keeps_a_verifying_receipt_once_hashed(app, client, tenant):
    """A compaction hashes the plain ids such a request held; its receipt then carries the commitment it was
    logged with (unsalted, no salt to show)."""
    from app.audit.canonical import commit_sample_ids as unsalted
    from tests.app.audit.test_audit_router import _seed_deletion

    request_id = _seed_deletion(app, tenant["id"])
    with app.state.sessionmaker() as session:
        request = session.get(DeletionRequest, request_id)
        request.sample_ids = get_id_hasher().hash_ids(tenant["id"], request.sample_ids)
        session.commit()
    receipt = client.get(f"/v1/deletions/{request_id}/receipt").json()
    assert receipt["request"]["sample_ids_sha256"] == unsalted(["u-1", "u-9"])
    assert receipt["request"]["commitment_salt"] is None and receipt["request"]["sample_count"] == 2
    verify_receipt(receipt, load_public_key(client.get("/v1/audit/public-key").json()["public_key_pem"]))
