"""The audit endpoints over HTTP (PostgreSQL and SQLite), checked with the offline verifier."""

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

from unlearn_client.verify.checks import (
    VerificationError,
    verify_consistency_document,
    verify_entry_inclusion,
    verify_log,
    verify_receipt,
    verify_tree_head,
)
from unlearn_client.verify.cli import main as verify_main

from app.audit.canonical import commit_sample_ids
from app.audit.service import append_entry
from app.audit.signing import load_public_key
from app.datasets.orm import Dataset
from app.deletions.orm import DeletionRequest
from app.models.orm import Model, ModelVersion
from tests.conftest import auth


def public_key(client):
    resp = client.get("/v1/audit/public-key", headers={"Authorization": ""})  # published: no key needed
    assert resp.status_code == 200, resp.text
    return load_public_key(resp.json()["public_key_pem"])


def all_pages(client, **params):
    entries, cursor = [], None
    while True:
        page = client.get("/v1/audit", params=params | {"limit": 7} | ({"cursor": cursor} if cursor else {})).json()
        entries += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return entries


def assert_problem(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["status"] == status and resp.json()["detail"]


def test_whole_log_verifies_and_tenants_see_their_own(client, root_client, make_key, tenant):
    make_key("reader")
    make_key("operator")
    key = public_key(client)
    head = client.get("/v1/audit/tree-head").json()
    size, _ = verify_tree_head(head, key)
    everything = all_pages(root_client)  # the platform admin sees the whole log
    assert [e["seq"] for e in everything][:size] == list(range(1, size + 1))
    verify_log(everything, key, head)

    mine = all_pages(client)
    assert mine and all(e["tenant_id"] == tenant["id"] for e in mine)
    assert [e["event_type"] for e in mine].count("apikey.created") >= 3
    assert all("unl_" not in json.dumps(e) for e in everything)  # no raw key anywhere in the log
    assert_problem(client.get("/v1/audit", params={"limit": 0}), 422)
    assert_problem(client.get("/v1/audit", params={"cursor": "not-a-cursor"}), 422)
    assert_problem(client.get("/v1/audit", headers={"Authorization": ""}), 401)


def test_entry_with_inclusion_proof(client, root_client):
    key = public_key(client)
    mine = all_pages(client)
    doc = client.get(f"/v1/audit/{mine[-1]['seq']}").json()
    verify_entry_inclusion(doc, key)
    assert doc["entry"] == mine[-1]
    root_client.post("/v1/tenants", json={"name": f"other-{uuid.uuid4().hex[:8]}"})  # another tenant's entry
    others = [e for e in all_pages(root_client) if e["tenant_id"] != mine[0]["tenant_id"]]
    assert_problem(client.get(f"/v1/audit/{others[0]['seq']}"), 404)  # another tenant's entry
    assert_problem(client.get("/v1/audit/0"), 422)
    assert_problem(client.get("/v1/audit/999999999"), 404)
    doc["entry"]["actor"] = "someone else"
    try:
        verify_entry_inclusion(doc, key)
    except VerificationError:
        pass
    else:
        raise AssertionError("an altered entry verified")


def test_consistency_between_heads(client, make_key):
    key = public_key(client)
    old = client.get("/v1/audit/tree-head").json()
    make_key("reader")
    new = client.get("/v1/audit/tree-head").json()
    assert new["tree_size"] > old["tree_size"]
    doc = client.get("/v1/audit/consistency", params={"from": old["tree_size"], "to": new["tree_size"]}).json()
    verify_consistency_document(doc, key, old, new)
    past = client.get("/v1/audit/tree-head", params={"size": 1}).json()
    doc = client.get("/v1/audit/consistency", params={"from": 1}).json()
    verify_consistency_document(doc, key, past, doc["tree_head"])
    assert_problem(client.get("/v1/audit/consistency", params={"from": 3, "to": 2}), 422)
    assert_problem(client.get("/v1/audit/consistency", params={"from": 1, "to": 10**9}), 422)
    assert_problem(client.get("/v1/audit/consistency"), 422)
    assert_problem(client.get("/v1/audit/tree-head", params={"size": 10**9}), 422)


def _seed_deletion(
    app, tenant_id: str, *, created_evidence: dict | None = None, exact_as_of_version: int | None = None
) -> str:
    """A model with versions 1 (purged) and 2, and a succeeded deletion, as the service records them
    (`created_evidence`: the evidence of version 2's version.created entry)."""
    ids = [str(uuid.uuid4()) for _ in range(3)]
    dataset_id, model_id, request_id = ids
    now = datetime.now(UTC)
    evidence = {
        "forget_commitment": "ab" * 32,
        "after": {"mia_auc": 0.5123, "forget_acc": 0.8},
        "rows": {"forget": 2, "live": 100},
        "note": "approximate unlearning: measured figures, not a certificate of exact deletion",
    }
    sample_ids = ["u-9", "u-1"]
    refs = {"model_id": model_id, "request_id": request_id}
    with app.state.sessionmaker() as s:
        s.add(Dataset(id=dataset_id, tenant_id=tenant_id, name="d", num_rows=100, feature_shape=[4],
                      num_classes=2, blob_sha256="00" * 32, blob_size=1))  # fmt: skip
        s.add(Model(id=model_id, tenant_id=tenant_id, name="m", dataset_id=dataset_id,
                    architecture={"name": "logreg", "config": {}}, status="ready", latest_version=2))  # fmt: skip
        s.flush()
        for v, sha, state in ((1, "11" * 32, "purged"), (2, "22" * 32, "available")):
            s.add(ModelVersion(model_id=model_id, version=v, parent_version=v - 1 or None, checkpoint_sha256=sha,
                               checkpoint_size=10, state=state))  # fmt: skip
        s.add(DeletionRequest(id=request_id, tenant_id=tenant_id, model_id=model_id, sample_ids=sample_ids,
                              status="succeeded", base_version=1, result_version=2, evidence=evidence,
                              requester="key-1", started_at=now, finished_at=now, removed_by="iau",
                              exact_as_of_version=exact_as_of_version))  # fmt: skip
        s.flush()
        requested = {"sample_count": 2, "method": "iau", "sample_ids_sha256": commit_sample_ids(sample_ids)}
        created = {"model_id": model_id, "version": 2, "parent_version": 1, "checkpoint_sha256": "22" * 32}
        audit = [
            ("key-1", "deletion.requested", refs, requested),
            ("worker", "deletion.started", refs | {"base_version": 1}, {}),
            ("worker", "deletion.succeeded", refs | {"version": 2}, evidence),
            ("worker", "version.created", created, created_evidence or {}),
            ("worker", "version.purged", {"model_id": model_id, "version": 1, "checkpoint_sha256": "11" * 32}, {}),
        ]
        for actor, event_type, r, ev in audit:
            append_entry(s, actor=actor, event_type=event_type, tenant_id=tenant_id, refs=r, evidence=ev)
        s.commit()
    return request_id


def test_receipt_verifies_offline(app, client, root_client, tenant, tmp_path):
    request_id = _seed_deletion(app, tenant["id"])
    resp = client.get(f"/v1/deletions/{request_id}/receipt")
    assert resp.status_code == 200, resp.text
    receipt = resp.json()
    key = public_key(client)
    verify_receipt(receipt, key)
    assert [a["entry"]["event_type"] for a in receipt["audit"]] == [
        "deletion.requested", "deletion.started", "deletion.succeeded", "version.created", "version.purged",
    ]  # fmt: skip
    assert receipt["result_version"]["checkpoint_sha256"] == "22" * 32
    assert receipt["request"]["sample_ids_sha256"] == commit_sample_ids(["u-1", "u-9"])

    tampered = json.loads(resp.text)
    tampered["evidence"]["after"]["mia_auc"] = 0.5
    try:
        verify_receipt(tampered, key)
    except VerificationError:
        pass
    else:
        raise AssertionError("a receipt with altered evidence verified")

    # the documented command, offline, from files
    (tmp_path / "receipt.json").write_text(resp.text)
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    (tmp_path / "key.pem").write_text(client.get("/v1/audit/public-key").json()["public_key_pem"])
    cmd = [sys.executable, "-m", "unlearn_client.verify", "receipt", "--public-key", str(tmp_path / "key.pem")]
    ok = subprocess.run(cmd + [str(tmp_path / "receipt.json")], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stderr
    assert verify_main(["receipt", str(tmp_path / "tampered.json"), "--public-key", str(tmp_path / "key.pem")]) == 1

    # another tenant cannot see it; the platform admin can
    other = root_client.post("/v1/tenants", json={"name": f"other-{uuid.uuid4().hex[:8]}"}).json()
    other_key = root_client.post("/v1/keys", json={"name": "a", "role": "admin", "tenant_id": other["id"]}).json()
    assert_problem(client.get(f"/v1/deletions/{request_id}/receipt", headers=auth(other_key["key"])), 404)
    verify_receipt(root_client.get(f"/v1/deletions/{request_id}/receipt").json(), key)
    assert_problem(client.get(f"/v1/deletions/{uuid.uuid4()}/receipt"), 404)
    reader = client.post("/v1/keys", json={"name": "r", "role": "reader"}).json()["key"]
    assert_problem(client.get(f"/v1/deletions/{request_id}/receipt", headers=auth(reader)), 403)


def test_receipt_claiming_exactness_needs_a_retrain_from_scratch_in_the_log(app, client, tenant):
    key = public_key(client)
    for created in ({"method": "retrain"}, {"method": "iau", "exact": {"covers_requests_through_version": 2}}):
        request_id = _seed_deletion(app, tenant["id"], created_evidence=created, exact_as_of_version=2)
        receipt = client.get(f"/v1/deletions/{request_id}/receipt").json()
        assert receipt["request"]["exact_as_of_version"] == 2 and receipt["exact_version"]["version"] == 2
        verify_receipt(receipt, key)
    request_id = _seed_deletion(app, tenant["id"], created_evidence={"method": "iau"}, exact_as_of_version=2)
    try:
        verify_receipt(client.get(f"/v1/deletions/{request_id}/receipt").json(), key)
    except VerificationError as exc:
        assert "retrained from scratch" in str(exc)
    else:
        raise AssertionError("a receipt claiming an exact version that the log does not show verified")
