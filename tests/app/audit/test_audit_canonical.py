"""Canonical encoding, entry hashes, the sample-id commitment, and the content rules of audit entries."""

import hashlib

import pytest

from app.audit.canonical import (
    GENESIS_HASH,
    canonical_json,
    commit_sample_ids,
    compute_entry_hash,
    normalize,
    sanitize_floats,
)
from app.audit.events import EventType, check_content
from app.audit.exceptions import AuditContentError, CanonicalError


def test_canonical_json_is_sorted_compact_utf8():
    assert canonical_json({"b": 1, "a": [True, None, "é"], "c": {"z": 0.5, "y": -0.0}}) == (
        '{"a":[true,null,"é"],"b":1,"c":{"y":-0.0,"z":0.5}}'.encode()
    )
    assert canonical_json(0.1 + 0.2) == b"0.30000000000000004"
    assert canonical_json(1e-7) == b"1e-07"
    assert canonical_json(10**30) == b"1000000000000000000000000000000"
    assert canonical_json((1, 2)) == b"[1,2]"
    assert normalize({"t": (1, 2.5)}) == {"t": [1, 2.5]}


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), {1: "x"}, {"k": b"raw"}, {"k": {1, 2}}, "\ud800", {"\ud800": 1}]
)
def test_non_canonical_values_refused(bad):
    with pytest.raises(CanonicalError):
        canonical_json(bad)


def test_entry_hash_by_hand():
    entry = {
        "seq": 1,
        "created_at": "2026-01-01T00:00:00.000000Z",
        "tenant_id": None,
        "actor": "k",
        "event_type": "model.registered",
        "refs": {"model_id": "m"},
        "evidence": {},
        "prev_hash": GENESIS_HASH,
        "entry_hash": "ignored",
        "extra": "ignored too",
    }
    text = (
        '{"actor":"k","created_at":"2026-01-01T00:00:00.000000Z","event_type":"model.registered","evidence":{},'
        '"prev_hash":"' + "0" * 64 + '","refs":{"model_id":"m"},"seq":1,"tenant_id":null}'
    )
    assert compute_entry_hash(entry) == hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(CanonicalError):
        compute_entry_hash({k: v for k, v in entry.items() if k != "prev_hash"})


def test_sample_id_commitment_vector():
    assert commit_sample_ids(["u-9", "u-1"]) == hashlib.sha256(b'["u-1", "u-9"]').hexdigest()
    assert commit_sample_ids(["é"]) == hashlib.sha256(b'["\\u00e9"]').hexdigest()


def test_sanitize_floats():
    assert sanitize_floats({"a": [float("nan"), float("inf"), -float("inf"), 1.5]}) == {
        "a": ["NaN", "Infinity", "-Infinity", 1.5]
    }


def test_content_rules():
    evidence = {"rows": {"forget": 2, "live": 100}, "sample_ids": "caller", "auc_trace": [0.9, 0.7]}
    assert check_content("deletion.succeeded", {"request_id": "r"}, evidence) is EventType.DELETION_SUCCEEDED
    for refs, ev in [
        ({}, {"rows": [[1.0, 2.0]]}),
        ({}, {"x": {"features": [0.1]}}),
        ({}, {"holdout_labels": [1]}),
        ({"sample_ids": ["alice"]}, {}),
        ({}, {"list": [{"api_key": "k"}]}),
        ({}, {"Password": "p"}),
        ({}, {"blob": b"\x00"}),
        ({}, {"big": "x" * 300_000}),
        ({}, {"nan": float("nan")}),
    ]:
        with pytest.raises(AuditContentError):
            check_content("deletion.succeeded", refs, ev)
    with pytest.raises(AuditContentError, match="unknown audit event type"):
        check_content("deletion.vanished", {}, {})
