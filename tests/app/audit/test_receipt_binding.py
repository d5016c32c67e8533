"""Receipts are bound to the log: a receipt the key holder edits and signs again is still rejected wherever it
differs from the entries it proves are in the log."""

import copy
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from unlearn_client.verify.checks import VerificationError, verify_receipt

from app.audit.canonical import commit_sample_ids
from app.audit.signing import Signer
from tests.app.audit.audit_helpers import LOG_SIGNER, flip_b64, make_log
from tests.app.audit.receipt_helpers import EVIDENCE, REQ_REFS, REQUEST, make_receipt, resign

KEY = LOG_SIGNER.public_key


def test_genuine_receipt_verifies():
    receipt = make_receipt()
    verify_receipt(receipt, KEY)
    assert receipt["request"]["sample_ids_sha256"] == commit_sample_ids(["u-17", "u-3"])
    assert receipt["forget_commitment"] == "ab" * 32
    json.dumps(receipt)  # plain JSON


def _set(receipt, path, value):
    target = receipt
    for key in path[:-1]:
        target = target[key]
    if value is _DROP:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


_DROP = object()
_LATER = REQUEST["created_at"][:-2] + "9Z"  # the same time, a few microseconds off

# (edits to the receipt, the words the rejection names). Each edit is one the key holder could make.
BINDING_CASES = {
    "method iau->retrain": ([(("request", "method"), "retrain")], "request.method"),
    "requester": ([(("request", "requester"), "key-2")], "request.requester"),
    "tenant": ([(("request", "tenant_id"), "tenant-2")], "request.tenant_id"),
    "sample_count": ([(("request", "sample_ids"), _DROP), (("request", "sample_count"), 3)], "request.sample_count"),
    "sample ids and commitment": (
        [(("request", "sample_ids"), ["u-4", "u-17"]),
         (("request", "sample_ids_sha256"), commit_sample_ids(["u-4", "u-17"]))],
        "request.sample_ids_sha256",
    ),
    "created_at": ([(("request", "created_at"), _LATER)], "request.created_at"),
    "started_at": ([(("request", "started_at"), None)], "request.started_at"),
    "finished_at": ([(("request", "finished_at"), _LATER)], "request.finished_at"),
    "status succeeded->failed": ([(("request", "status"), "failed")], "request.status"),
    "status succeeded->running": ([(("request", "status"), "running")], "request.status"),
    "error on a success": ([(("request", "error"), "it failed")], "request.error"),
    "evidence emptied": ([(("evidence",), {})], "evidence in the receipt differs"),
    "evidence removed": ([(("evidence",), None)], "evidence in the receipt differs"),
    "evidence figure": ([(("evidence", "after", "mia_auc"), 0.5)], r"fields \['after'\]"),
    "evidence added": ([(("evidence", "exact"), True)], r"fields \['exact'\]"),
    "forget_commitment": ([(("forget_commitment",), "cd" * 32)], "forget_commitment"),
    "result version": ([(("result_version", "version"), 3)], "result_version"),
    "result parent": ([(("result_version", "parent_version"), 0)], "result_version.parent_version"),
    "result checkpoint": ([(("result_version", "checkpoint_sha256"), "33" * 32)], "result_version.checkpoint_sha256"),
    "base version": ([(("base_version", "version"), 0)], "base_version"),
    "base checkpoint": ([(("base_version", "checkpoint_sha256"), "44" * 32)], "base_version.checkpoint_sha256"),
    "purpose": ([(("request", "purpose"), "poison")], "request.purpose"),
    "removed_by": ([(("request", "removed_by"), "retrain")], "request.removed_by"),
    "outcome": ([(("outcome",), {"met": True})], "outcome"),
    "exact claimed": ([(("request", "exact_as_of_version"), 2), (("exact_version",), {"version": 2})],
                      "retrained from scratch"),
    "request id": ([(("request", "id"), "req-2")], "does not concern"),
    "model": ([(("request", "model_id"), "m-2")], "does not concern"),
}  # fmt: skip


@pytest.mark.parametrize("edits, named", list(BINDING_CASES.values()), ids=list(BINDING_CASES))
def test_each_field_edited_and_resigned_is_rejected(edits, named):
    receipt = make_receipt()
    for path, value in edits:
        _set(receipt, path, value)
    edited = resign(receipt)
    with pytest.raises(VerificationError, match=named):
        verify_receipt(edited, KEY)


def _leaves(value, prefix=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, prefix + (k,))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaves(v, prefix + (i,))
    else:
        yield prefix, value


# Fields the log does not record (docs/audit.md): a key holder can state anything there.
UNBOUND = {
    ("issued_at",),
    ("request", "reason"),
    ("request", "commitment_salt"),  # derived from the service's id key; a wrong salt fails the requester's opening
    ("base_version", "checkpoint_size"),
    ("base_version", "state"),
    ("base_version", "created_at"),
    ("base_version", "parent_version"),
    ("result_version", "checkpoint_size"),
    ("result_version", "state"),
    ("result_version", "created_at"),
    ("key_id",),
    ("signature",),
    ("receipt_format",),
}


def test_every_other_field_edited_and_resigned_is_rejected():
    """Walk every value of the receipt, change it, sign again: rejected unless the field is one the log does not
    record."""
    receipt = make_receipt()
    checked = 0
    for path, value in _leaves(receipt):
        if path in UNBOUND:
            continue
        if path[0] == "request" and path[1] in ("sample_ids", "sample_ids_sha256"):
            continue  # covered above: the ids and their commitment are checked against each other first
        bad = copy.deepcopy(receipt)
        if isinstance(value, bool) or value is None:
            new = "x"
        elif isinstance(value, int | float):
            new = value + 1
        elif isinstance(value, str):
            new = value[:-1] + ("0" if value[-1:] != "0" else "1")
        else:
            new = {"x": 1}
        _set(bad, path, new)
        with pytest.raises(VerificationError):
            verify_receipt(resign(bad), KEY)
        checked += 1
    assert checked > 100


def test_unbound_fields_are_what_the_log_does_not_record():
    """The fields left out above really are free: editing them leaves a receipt that verifies (the list is
    exact, so a field that becomes bound must leave it)."""
    receipt = make_receipt()
    for path in UNBOUND - {("key_id",), ("signature",), ("receipt_format",)}:
        bad = copy.deepcopy(receipt)
        _set(bad, path, "edited")
        verify_receipt(resign(bad), KEY)


def test_failed_request_binds_its_error():
    refs = REQ_REFS
    log = make_log(
        4,
        [
            {},
            {"event_type": "deletion.requested", "refs": refs, "actor": "key-1",
             "evidence": {"sample_count": 2, "method": "retrain",
                          "sample_ids_sha256": commit_sample_ids(["u-3", "u-17"])}},
            {"event_type": "deletion.failed", "refs": refs, "actor": "worker", "evidence": {"error": "out of memory"}},
        ],
    )  # fmt: skip
    request = REQUEST | {
        "status": "failed",
        "method": "retrain",
        "removed_by": None,
        "error": "out of memory",
        "evidence": None,
        "started_at": None,
        "created_at": log[1]["created_at"],
        "finished_at": log[2]["created_at"],
    }
    kwargs = dict(entries=log, seqs=(2, 3), request=request, base_version=None, result_version=None)
    verify_receipt(make_receipt(**kwargs), KEY)
    for field, value, named in [
        ("error", "a different reason", "request.error"),
        ("status", "succeeded", "request.status"),
        ("evidence", EVIDENCE, "evidence in the receipt differs"),
    ]:
        with pytest.raises(VerificationError, match=named):
            verify_receipt(make_receipt(**kwargs | {"request": request | {field: value}}), KEY)
    with pytest.raises(VerificationError, match="result_version"):
        verify_receipt(make_receipt(**kwargs | {"result_version": {"version": 2}}), KEY)


def test_receipt_with_entries_of_another_key_or_unsigned_rejected():
    """A receipt whose entries were planted in the database (no signature by the log's key) is rejected, even
    with a tree head and receipt signed by the key holder over them."""
    planted = make_log(9, signer=Signer(Ed25519PrivateKey.generate()))
    with pytest.raises(VerificationError, match="signature is not the log key's"):
        verify_receipt(make_receipt(entries=planted, seqs=(2,)), KEY)
    unsigned = make_log(9, signer=None)
    with pytest.raises(VerificationError, match="carries no signature"):
        verify_receipt(make_receipt(entries=unsigned, seqs=(2,)), KEY)


def test_receipt_signature_bytes_and_other_key():
    receipt = make_receipt()
    for i in range(64):
        with pytest.raises(VerificationError):
            verify_receipt(receipt | {"signature": flip_b64(receipt["signature"], i)}, KEY)
    with pytest.raises(VerificationError):
        verify_receipt(make_receipt(Signer(Ed25519PrivateKey.generate())), KEY)


@pytest.mark.parametrize(
    "seqs, named",
    [
        ((2, 3, 6, 7), "request.status 'succeeded' differs from the log: no outcome entry"),
        ((3, 5, 6), "lacks the deletion.requested"),
        ((1, 2, 3, 5, 6), "does not concern"),
        ((3, 2, 5, 6), "increasing seq"),
        ((2, 3, 5, 7), "lacks its version.created"),
        ((), "no audit entries"),
    ],
)
def test_receipt_missing_or_foreign_entries_rejected(seqs, named):
    with pytest.raises(VerificationError, match=named):
        verify_receipt(make_receipt(seqs=seqs), KEY)


def test_sample_ids_must_match_their_commitment():
    receipt = make_receipt()
    receipt["request"]["sample_ids"] = ["u-17"]
    with pytest.raises(VerificationError, match="sample_ids do not match"):
        verify_receipt(resign(receipt), KEY)


def test_any_changed_receipt_field_rejected():
    """Without the key: any value changed, nothing signed again, is rejected (by a signature or a hash)."""
    receipt = make_receipt()
    checked = 0
    for path, value in _leaves(receipt):
        bad = copy.deepcopy(receipt)
        if isinstance(value, bool) or value is None:
            new = "x"
        elif isinstance(value, int | float):
            new = value + 1
        elif path[-1] == "signature":
            new = flip_b64(value, 5)
        elif isinstance(value, str):
            new = value[:-1] + ("0" if value[-1:] != "0" else "1")
        else:
            new = {"x": 1}
        _set(bad, path, new)
        with pytest.raises(VerificationError):
            verify_receipt(bad, KEY)
        checked += 1
    assert checked > 100
