"""A deletion's log and its receipt, built in memory exactly as the service builds them (app.audit.service)."""

from datetime import UTC, datetime
from typing import Any

from app.audit.canonical import commit_sample_ids
from app.audit.receipt import build_receipt
from app.audit.signing import RECEIPT_DOMAIN, Signer
from tests.app.audit.audit_helpers import LOG_SIGNER, make_log, tree_of

REQ_REFS = {"model_id": "m-1", "request_id": "req-1"}
EVIDENCE = {"forget_commitment": "ab" * 32, "after": {"mia_auc": 0.51}, "device": "cpu", "method": "iau"}
_WORKER = {"actor": "worker"}
RECEIPT_LOG = make_log(
    9,
    [
        {},
        {"event_type": "deletion.requested", "refs": REQ_REFS, "actor": "key-1",
         "evidence": {"sample_count": 2, "method": "iau", "sample_ids_sha256": commit_sample_ids(["u-3", "u-17"])}},
        _WORKER | {"event_type": "deletion.started", "refs": REQ_REFS | {"base_version": 1},
                   "evidence": {"coalesced_requests": 1, "job_id": "job-1"}},
        {},
        _WORKER | {"event_type": "deletion.succeeded", "refs": REQ_REFS | {"version": 2}, "evidence": EVIDENCE},
        _WORKER | {"event_type": "version.created",
                   "refs": {"model_id": "m-1", "version": 2, "parent_version": 1, "checkpoint_sha256": "22" * 32,
                            "applied_requests": ["req-1"]},
                   "evidence": {"method": "iau"}},
        _WORKER | {"event_type": "version.purged",
                   "refs": {"model_id": "m-1", "version": 1, "checkpoint_sha256": "11" * 32},
                   "evidence": {"superseded_by": 2}},
    ],
)  # fmt: skip
RECEIPT_SEQS = (2, 3, 5, 6, 7)

REQUEST = {
    "id": "req-1",
    "model_id": "m-1",
    "tenant_id": "tenant-1",
    "status": "succeeded",
    "method": "iau",
    "reason": "account closed",
    "requester": "key-1",
    "sample_ids": ["u-17", "u-3"],
    "error": None,
    "evidence": EVIDENCE,
    # the times of the deletion.requested, deletion.started and deletion.succeeded entries
    "created_at": RECEIPT_LOG[1]["created_at"],
    "started_at": RECEIPT_LOG[2]["created_at"],
    "finished_at": RECEIPT_LOG[4]["created_at"],
    "purpose": "privacy",
    "removed_by": "iau",
    "exact_as_of_version": None,
}
BASE = {"version": 1, "parent_version": None, "checkpoint_sha256": "11" * 32, "checkpoint_size": 10, "state": "purged"}
RESULT = {
    "version": 2,
    "parent_version": 1,
    "checkpoint_sha256": "22" * 32,
    "checkpoint_size": 10,
    "state": "available",
}


def make_receipt(
    signer: Signer = LOG_SIGNER,
    entries: list[dict[str, Any]] = RECEIPT_LOG,
    seqs: tuple[int, ...] = RECEIPT_SEQS,
    request: dict[str, Any] = REQUEST,
    **overrides: Any,
) -> dict[str, Any]:
    tree = tree_of(entries)
    n = len(entries)
    audit = [
        {
            "entry": entries[s - 1],
            "inclusion_proof": {
                "leaf_index": s - 1,
                "tree_size": n,
                "audit_path": [p.hex() for p in tree.inclusion_proof(s - 1, n)],
            },
        }
        for s in seqs
    ]
    kwargs = dict(
        request=request,
        base_version=BASE,
        result_version=RESULT,
        audit=audit,
        tree_head=signer.sign_tree_head(n, tree.root()),
        signer=signer,
        issued_at=datetime(2026, 1, 3, tzinfo=UTC),
    )
    return build_receipt(**(kwargs | overrides))


def resign(receipt: dict[str, Any], signer: Signer = LOG_SIGNER) -> dict[str, Any]:
    """The receipt signed again by the key holder (after an edit): only its binding to the log can catch the edit."""
    return signer.sign(RECEIPT_DOMAIN, receipt)
