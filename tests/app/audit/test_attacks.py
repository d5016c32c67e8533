"""The attacks on the audit log that a holder of the database (and, where said, of the key) can make, each
reproduced against the running API on PostgreSQL and SQLite, and shown detected or refused."""

import logging

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from unlearn_client.verify.checks import (
    VerificationError,
    verify_consistency_document,
    verify_log,
    verify_receipt,
    verify_tree_head,
)

from app.audit import outbox, tree
from app.audit.orm import AuditEntry, AuditOutboxEntry
from app.audit.signing import RECEIPT_DOMAIN, Signer, load_public_key, signer_at
from tests.app.audit import tamper
from tests.app.audit.test_audit_router import _seed_deletion

INTRUDER = Signer(Ed25519PrivateKey.generate())  # a key that is not the log's


@pytest.fixture
def alarms(caplog):
    """The kinds of the integrity alarms logged during the test (the app's loggers may not propagate to the root,
    where caplog listens: its handler listens on app.audit as well, and a record seen twice counts once)."""
    logger = logging.getLogger("app.audit")
    logger.addHandler(caplog.handler)

    def kinds() -> list[str]:
        records = {id(r): r for r in caplog.records if r.getMessage() == "audit.integrity_alarm"}
        return [r.fields["kind"] for r in records.values()]

    yield kinds
    logger.removeHandler(caplog.handler)


def alarm_count(kind: str) -> float:
    return REGISTRY.get_sample_value("unlearn_audit_integrity_alarms_total", {"kind": kind}) or 0.0


def key_of(service):
    return load_public_key(service.client.get("/v1/audit/public-key").json()["public_key_pem"])


def some_events(service, n: int = 3) -> None:
    for i in range(n):
        resp = service.client.post("/v1/tenants", json={"name": f"t-{i}-{id(service)}"})
        assert resp.status_code == 201, resp.text


def seed_deletion(service) -> str:
    """A tenant and a succeeded deletion in it, as the service records them; returns the request id."""
    tenant = service.client.post("/v1/tenants", json={"name": "deletions"}).json()
    return _seed_deletion(service.client.app, tenant["id"])


def all_entries(service) -> list[dict]:
    return service.client.get("/v1/audit", params={"limit": 1000}).json()["items"]


def assert_refused(resp, kind: str, words: str = "") -> None:
    """503 with the audit-log-integrity problem naming the alarm, never a 500 or a signature."""
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["type"].endswith("/audit-log-integrity") and body["alarm"] == kind, body
    assert words in body["detail"], body["detail"]


def signing_reads(service, seq: int, request_id: str | None = None) -> list[str]:
    paths = ["/v1/audit/tree-head", "/v1/audit/checkpoint", "/v1/audit/consistency?from=1", f"/v1/audit/{seq}"]
    return paths + ([f"/v1/deletions/{request_id}/receipt"] if request_id else [])


@pytest.mark.parametrize("forger", [None, INTRUDER], ids=["unsigned", "another-key"])
def test_entry_inserted_into_the_table_is_never_signed_into_a_head(service, alarms, forger):
    """Direct INSERT of a correctly chained deletion.succeeded: the service refuses to sign over it, and the
    offline verifier rejects the log."""
    request_id = seed_deletion(service)
    key = key_of(service)
    head = service.client.get("/v1/audit/tree-head").json()  # the cache holds the genuine log
    with tamper.owner(service.url) as db:
        forged = tamper.forge_entry(db, signer=forger)
    before = alarm_count("signature")
    for path in signing_reads(service, forged["seq"], request_id):
        assert_refused(service.client.get(path), "signature", f"entry {forged['seq']}")
    assert "signature" in alarms() and alarm_count("signature") > before
    tree._caches.clear()  # a process that starts now (nothing cached) refuses too
    assert_refused(service.client.get("/v1/audit/tree-head"), "signature")

    entries = all_entries(service)  # the list still answers: readers can see and check what is stored
    assert entries[-1]["entry_hash"] == forged["entry_hash"]
    verify_log(entries)  # the chain holds: only the signature tells
    with pytest.raises(VerificationError, match=f"entry {forged['seq']} (carries no signature|signature is not)"):
        verify_log(entries, key, head)
    # a genuine event later is chained after it; the log stays refused until an operator removes the entry
    some_events(service, 1)
    assert_refused(service.client.get("/v1/audit/tree-head"), "signature")


def test_event_planted_in_the_outbox_is_refused_and_stays(service, alarms):
    some_events(service)
    with tamper.owner(service.url) as db:
        planted = [tamper.plant_outbox(db, signer=INTRUDER), tamper.plant_outbox(db, signer=None)]
    head = service.client.get("/v1/audit/tree-head")  # chains the outbox first
    assert head.status_code == 200, head.text
    entries = all_entries(service)
    assert not any(e["actor"] == "key-planted" for e in entries)
    verify_log(entries, key_of(service), head.json())
    assert alarms().count("outbox_signature") == 2
    service.client.get("/v1/audit/tree-head")
    assert alarms().count("outbox_signature") == 2  # each planted row is reported once per process
    with tamper.owner(service.url) as db, db.connect() as conn:
        ids = conn.scalars(select(AuditOutboxEntry.id)).all()
        assert sorted(ids) == sorted(planted)  # left in place, as evidence
        for statement in (f"DELETE FROM audit_outbox WHERE id = {planted[0]}", "DELETE FROM audit_outbox"):
            with pytest.raises(DBAPIError, match="not chained yet"):
                conn.execute(text(statement))
            conn.rollback()
        with pytest.raises(DBAPIError, match="insert-only"):
            conn.execute(text("UPDATE audit_outbox SET actor = 'someone'"))
        conn.rollback()


def test_pending_event_cannot_be_suppressed_and_a_replay_is_not_chained(service, alarms):
    with service.sessions() as s:
        outbox.record(s, actor="key-1", event_type="apikey.revoked", tenant_id=None, refs={"key_id": "k-1"})
        s.commit()
    with tamper.owner(service.url) as db, db.connect() as conn:
        with pytest.raises(DBAPIError, match="not chained yet"):
            conn.execute(text("DELETE FROM audit_outbox"))  # a genuine event waiting to be chained
        conn.rollback()
    entries = all_entries(service)  # chained now
    revoked = next(e for e in entries if e["event_type"] == "apikey.revoked")
    with tamper.owner(service.url) as db:
        tamper.plant_outbox(db, signer=None, event=revoked)  # a copy of the genuine, signed event
    after = all_entries(service)
    assert [e["event_id"] for e in after].count(revoked["event_id"]) == 1
    assert "outbox_replay" in alarms()
    with service.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditOutboxEntry)) == 0  # the copy was dropped
    verify_log(after, key_of(service), service.client.get("/v1/audit/tree-head").json())


def test_tamper_then_revert_against_the_cached_tree(service, alarms):
    """An entry rewritten and the chain re-hashed behind the service's back: it signs nothing until the entries
    it verified are back, and then a head consistent with the one before."""
    some_events(service, 4)
    key = key_of(service)
    old = service.client.get("/v1/audit/tree-head").json()
    with tamper.owner(service.url) as db:
        original = tamper.entries(db)
        tamper.rewrite_entry(db, 2, evidence={"rewritten": True})
    for path in signing_reads(service, 3):
        assert_refused(service.client.get(path), "rewritten", f"entry {old['tree_size']}")
    with tamper.owner(service.url) as db:
        tamper.put_back(db, original[1:])
    new = service.client.get("/v1/audit/tree-head").json()
    assert verify_tree_head(new, key)[0] >= old["tree_size"]
    proof = service.client.get("/v1/audit/consistency", params={"from": old["tree_size"], "to": new["tree_size"]})
    verify_consistency_document(proof.json(), key, old, new)
    verify_log(all_entries(service), key, new)
    assert alarms().count("rewritten") >= 1


def test_database_and_key_holder_is_caught_only_by_published_heads(service, alarms):
    """With the key too, a rewritten entry is signed again and every entry verifies. The running service still
    refuses (it verified the old entries), a restarted one refuses while the checkpoint file holds the old head;
    with the file gone as well, only a head kept outside (a witness, an auditor) shows the rewrite."""
    some_events(service, 4)
    key = key_of(service)
    kept = service.client.get("/v1/audit/tree-head").json()  # what an auditor or a witness kept
    assert service.checkpoint_path.read_text().split("\n")[1] == str(kept["tree_size"])
    signer = signer_at(service.settings.audit_signing_key_path)
    with tamper.owner(service.url) as db:
        tamper.rewrite_entry(db, 2, signer=signer, evidence={"rewritten": True})
    verify_log(all_entries(service), key)  # entries, chain and signatures all hold
    assert_refused(service.client.get("/v1/audit/tree-head"), "rewritten")
    tree._caches.clear()  # restarted: the published checkpoint is the memory
    assert_refused(service.client.get("/v1/audit/tree-head"), "inconsistent_head")
    service.checkpoint_path.unlink()
    tree._caches.clear()
    forged = service.client.get("/v1/audit/tree-head")
    assert forged.status_code == 200  # nothing inside the host remembers the old log
    proof = service.client.get("/v1/audit/consistency", params={"from": kept["tree_size"]}).json()
    with pytest.raises(VerificationError, match="old tree head does not match"):
        verify_consistency_document(proof, key, kept, forged.json())
    assert {"rewritten", "inconsistent_head"} <= set(alarms())


def test_gap_in_seq_answers_503_not_500(service, alarms):
    request_id = seed_deletion(service)
    service.client.get("/v1/audit/tree-head")
    with tamper.owner(service.url) as db:
        ahead = tamper.forge_entry(db, signer=signer_at(service.settings.audit_signing_key_path), seq_step=2)
    missing = ahead["seq"] - 1
    for path in signing_reads(service, ahead["seq"] - 2, request_id):
        assert_refused(service.client.get(path), "gap", f"entry {missing} is missing")
    # a row deleted from the middle (triggers off): a process loading the log refuses it
    with tamper.owner(service.url) as db, tamper.triggers_off(db), db.begin() as conn:
        conn.execute(text(f"DELETE FROM audit_entries WHERE seq >= {missing}"))
        conn.execute(text("DELETE FROM audit_entries WHERE seq = 2"))
    tree._caches.clear()
    service.checkpoint_path.unlink(missing_ok=True)
    assert_refused(service.client.get("/v1/audit/tree-head"), "gap", "entry 2 is missing")
    assert "gap" in alarms()


def test_log_shortened_after_a_head_was_signed_is_refused(service, alarms):
    some_events(service, 3)
    head = service.client.get("/v1/audit/tree-head").json()
    with tamper.owner(service.url) as db, tamper.triggers_off(db), db.begin() as conn:
        conn.execute(text(f"DELETE FROM audit_entries WHERE seq = {head['tree_size']}"))
    assert_refused(service.client.get("/v1/audit/tree-head"), "rewritten", f"{head['tree_size'] - 1} entries")
    tree._caches.clear()  # restarted: the checkpoint file remembers the size
    assert_refused(service.client.get("/v1/audit/tree-head"), "rewritten")


@pytest.mark.parametrize(
    "field, value",
    [("method", "retrain"), ("requester", "key-2"), ("finished_at", "2030-01-01T00:00:00.000000Z"),
     ("sample_count", 5), ("tenant_id", "another-tenant")],
)  # fmt: skip
def test_receipt_edited_and_signed_again_by_the_key_holder_is_rejected(service, field, value):
    request_id = seed_deletion(service)
    receipt = service.client.get(f"/v1/deletions/{request_id}/receipt").json()
    key = key_of(service)
    verify_receipt(receipt, key)
    signer = signer_at(service.settings.audit_signing_key_path)
    receipt["request"][field] = value
    if field == "sample_count":
        receipt["request"].pop("sample_ids", None)
    with pytest.raises(VerificationError, match=f"request.{field}"):
        verify_receipt(signer.sign(RECEIPT_DOMAIN, receipt), key)
    emptied = service.client.get(f"/v1/deletions/{request_id}/receipt").json() | {"evidence": {}}
    with pytest.raises(VerificationError, match="evidence in the receipt differs"):
        verify_receipt(signer.sign(RECEIPT_DOMAIN, emptied), key)


def test_entries_count_unchanged_by_refused_reads(service):
    """Refusing to sign writes nothing: the stored log is what the attacker left, no more."""
    some_events(service, 2)
    assert service.client.get("/v1/audit/tree-head").status_code == 200  # the events are chained
    with tamper.owner(service.url) as db:
        tamper.forge_entry(db, signer=None)
    with service.sessions() as s:
        before = s.scalar(select(func.count()).select_from(AuditEntry))
    for _ in range(3):
        assert service.client.get("/v1/audit/tree-head").status_code == 503
    with service.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_row_edited_without_rechaining_is_not_served(service, alarms):
    """An entry's content changed in place (its hashes left alone) after the service verified it: the service
    does not serve it with a proof or in a receipt; the list shows it, and readers' verification rejects it."""
    request_id = seed_deletion(service)
    head = service.client.get("/v1/audit/tree-head").json()
    requested = next(e for e in all_entries(service) if e["event_type"] == "deletion.requested")
    with tamper.owner(service.url) as db, tamper.triggers_off(db), db.begin() as conn:
        conn.execute(
            text("UPDATE audit_entries SET actor = 'key-someone-else' WHERE seq = :seq"), {"seq": requested["seq"]}
        )
    assert_refused(service.client.get(f"/v1/audit/{requested['seq']}"), "rewritten", f"entry {requested['seq']}")
    assert_refused(service.client.get(f"/v1/deletions/{request_id}/receipt"), "rewritten")
    with pytest.raises(VerificationError, match=f"entry {requested['seq']}: entry_hash"):
        verify_log(all_entries(service), key_of(service), head)
    tree._caches.clear()  # a process that loads the log now refuses any head
    assert_refused(service.client.get("/v1/audit/tree-head"), "entry_hash")
