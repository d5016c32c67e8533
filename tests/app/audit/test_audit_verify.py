"""The offline verifier accepts genuine logs, proofs, heads and receipts and rejects every kind of tampering."""

import copy
import json

import pytest
from unlearn_client.verify.checks import (
    VerificationError,
    verify_consistency_between,
    verify_consistency_document,
    verify_entry_inclusion,
    verify_log,
    verify_tree_head,
)
from unlearn_client.verify.cli import main

from app.audit.canonical import compute_entry_hash
from app.audit.signing import load_or_create_signing_key
from tests.app.audit.audit_helpers import LOG_SIGNER, flip_b64, flip_hex, make_log, rechain, tree_of
from tests.app.audit.receipt_helpers import make_receipt


@pytest.fixture(scope="module")
def signer():
    return LOG_SIGNER


@pytest.fixture(scope="module")
def other_signer(tmp_path_factory):
    return load_or_create_signing_key(tmp_path_factory.mktemp("k2") / "other.pem")


LOG = make_log(21)


def head_for(signer, entries, size=None):
    size = len(entries) if size is None else size
    return signer.sign_tree_head(size, tree_of(entries).root(size))


def entry_doc(signer, entries, seq, size=None):
    size = len(entries) if size is None else size
    tree = tree_of(entries)
    return {
        "entry": entries[seq - 1],
        "inclusion_proof": {
            "leaf_index": seq - 1,
            "tree_size": size,
            "audit_path": [p.hex() for p in tree.inclusion_proof(seq - 1, size)],
        },
        "tree_head": head_for(signer, entries, size),
    }


# --- whole log -------------------------------------------------------------------------------------------------


def test_genuine_log_verifies(signer):
    assert verify_log(LOG, signer.public_key, head_for(signer, LOG)) == tree_of(LOG).root()
    # a log that grew after the head was signed still verifies against it
    verify_log(LOG, signer.public_key, head_for(signer, LOG, 13))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda log: [log[1], log[0], *log[2:]], id="swapped"),
        pytest.param(lambda log: log[:7] + log[8:], id="removed-middle"),
        pytest.param(lambda log: log[1:], id="removed-first"),
        pytest.param(lambda log: log[:5] + [copy.deepcopy(log[4])] + log[5:], id="duplicated"),
        pytest.param(lambda log: rechain(log[:5] + [copy.deepcopy(log[9])] + log[5:]), id="inserted-rechained"),
        pytest.param(lambda log: rechain(log[:7] + log[8:]), id="removed-rechained"),
        pytest.param(lambda log: rechain([log[1], log[0], *log[2:]]), id="swapped-rechained"),
        pytest.param(lambda log: log[:-1], id="truncated"),
    ],
)
def test_reordered_removed_inserted_entries_rejected(signer, tamper):
    head = head_for(signer, LOG)
    with pytest.raises(VerificationError):
        verify_log(tamper(copy.deepcopy(LOG)), signer.public_key, head)


def test_altered_evidence_rejected(signer):
    head = head_for(signer, LOG)
    log = copy.deepcopy(LOG)
    log[3]["evidence"]["auc"] = 0.51
    with pytest.raises(VerificationError, match="entry 4: entry_hash"):
        verify_log(log, signer.public_key, head)
    # re-hashing the altered entry breaks the chain at the next one, and its signature
    log[3]["entry_hash"] = compute_entry_hash(log[3])
    with pytest.raises(VerificationError, match="entry 5: prev_hash"):
        verify_log(log)
    with pytest.raises(VerificationError, match="entry 4 signature is not the log key's"):
        verify_log(log, signer.public_key, head)
    # re-chaining everything gives a self-consistent chain that the entry's signature refuses (and the signed head:
    # test_reordered_removed_inserted_entries_rejected)
    verify_log(rechain(log))
    with pytest.raises(VerificationError, match="entry 4 signature"):
        verify_log(rechain(log), signer.public_key, head)
    for field, value in [("actor", "key-2"), ("tenant_id", None), ("event_type", "model.trained"), ("seq", 4)]:
        log = copy.deepcopy(LOG)
        log[10][field] = value
        with pytest.raises(VerificationError):
            verify_log(log, signer.public_key, head)


def test_forged_unsigned_and_replayed_entries_rejected(signer, other_signer):
    """What a database holder without the key can write: an entry with another key's signature or none, or a copy
    of a genuine event. Each is rejected even when it is chained correctly."""
    forged = make_log(22, [{}] * 21 + [{"event_type": "deletion.succeeded"}], signer=signer)
    forged[21] = make_log(22, [{}] * 21 + [{"event_type": "deletion.succeeded"}], signer=other_signer)[21]
    forged = rechain(LOG + [forged[21]])
    with pytest.raises(VerificationError, match="entry 22 signature is not the log key's"):
        verify_log(forged, signer.public_key)
    unsigned = rechain(LOG + make_log(1, signer=None))
    with pytest.raises(VerificationError, match="entry 22 carries no signature"):
        verify_log(unsigned, signer.public_key)
    replayed = rechain(LOG + [copy.deepcopy(LOG[4])])
    with pytest.raises(VerificationError, match="entry 22: event .* is already in the log"):
        verify_log(replayed, signer.public_key)
    verify_log(forged)  # without the key only the chain is checked: it holds
    # a log upgraded from a release without signatures: its first entries may carry none, no later one
    legacy = rechain(make_log(3, signer=None) + LOG)
    verify_log(legacy, signer.public_key, legacy_entries=3)
    with pytest.raises(VerificationError, match="entry 3 carries no signature"):
        verify_log(legacy, signer.public_key, legacy_entries=2)
    with pytest.raises(VerificationError, match="entry 25 carries no signature"):
        verify_log(rechain(legacy + make_log(1, signer=None)), signer.public_key, legacy_entries=3)


# --- tree heads --------------------------------------------------------------------------------------------------


def test_tree_head_flipped_byte_or_other_key_rejected(signer, other_signer):
    head = head_for(signer, LOG)
    assert verify_tree_head(head, signer.public_key) == (21, tree_of(LOG).root())
    for i in range(64):
        with pytest.raises(VerificationError):
            verify_tree_head(head | {"signature": flip_b64(head["signature"], i)}, signer.public_key)
    for i in range(32):
        with pytest.raises(VerificationError):
            verify_tree_head(head | {"root_hash": flip_hex(head["root_hash"], i)}, signer.public_key)
    with pytest.raises(VerificationError):
        verify_tree_head(head | {"timestamp": head["timestamp"] + 1}, signer.public_key)
    with pytest.raises(VerificationError):
        verify_tree_head(head_for(other_signer, LOG), signer.public_key)
    with pytest.raises(VerificationError):  # log verification with a head signed by another key
        verify_log(LOG, signer.public_key, head_for(other_signer, LOG))


# --- entry + inclusion proof -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [1, 2, 8, 16, 17, 21])
def test_entry_inclusion(signer, other_signer, seq):
    doc = entry_doc(signer, LOG, seq)
    verify_entry_inclusion(doc, signer.public_key)
    for i, node in enumerate(doc["inclusion_proof"]["audit_path"]):
        for byte in (0, 31):
            bad = copy.deepcopy(doc)
            bad["inclusion_proof"]["audit_path"][i] = flip_hex(node, byte)
            with pytest.raises(VerificationError):
                verify_entry_inclusion(bad, signer.public_key)
    bad = copy.deepcopy(doc)
    bad["entry"]["evidence"]["n"] += 1
    with pytest.raises(VerificationError):
        verify_entry_inclusion(bad, signer.public_key)
    bad["entry"]["entry_hash"] = compute_entry_hash(bad["entry"])
    with pytest.raises(VerificationError):
        verify_entry_inclusion(bad, signer.public_key)
    bad = copy.deepcopy(doc)
    bad["tree_head"]["signature"] = flip_b64(doc["tree_head"]["signature"], 10)
    with pytest.raises(VerificationError):
        verify_entry_inclusion(bad, signer.public_key)
    with pytest.raises(VerificationError):
        verify_entry_inclusion(entry_doc(other_signer, LOG, seq), signer.public_key)
    bad = copy.deepcopy(doc)
    bad["entry"] = LOG[seq % 21]  # another genuine entry with this entry's proof
    with pytest.raises(VerificationError):
        verify_entry_inclusion(bad, signer.public_key)


# --- consistency -------------------------------------------------------------------------------------------------


def consistency_doc(entries, m, n):
    tree = tree_of(entries)
    return {
        "first_size": m,
        "second_size": n,
        "first_root": tree.root(m).hex(),
        "second_root": tree.root(n).hex(),
        "proof": [p.hex() for p in tree.consistency_proof(m, n)],
    }


@pytest.mark.parametrize("m", [0, 1, 3, 8, 13, 21])
def test_consistency(signer, m):
    old, new = head_for(signer, LOG, m), head_for(signer, LOG)
    doc = consistency_doc(LOG, m, 21)
    verify_consistency_between(old, new, doc["proof"], signer.public_key)
    verify_consistency_document(doc, signer.public_key, old, new)
    for i, node in enumerate(doc["proof"]):
        bad = list(doc["proof"])
        bad[i] = flip_hex(node, 7)
        with pytest.raises(VerificationError):
            verify_consistency_between(old, new, bad, signer.public_key)
    if m < 21:
        with pytest.raises(VerificationError):
            verify_consistency_between(new, old, doc["proof"], signer.public_key)


def test_consistency_between_unrelated_trees_rejected(signer, other_signer):
    forked = rechain(LOG[:8] + make_log(13, [{"actor": "forger"}] * 13))  # same first 8 entries, then a fork
    unrelated = make_log(21, [{"actor": "elsewhere"}] * 21)
    new = head_for(signer, LOG)
    for other in (forked, unrelated):
        old = head_for(signer, other, 13)
        for proof in (consistency_doc(LOG, 13, 21)["proof"], consistency_doc(other, 13, 21)["proof"]):
            with pytest.raises(VerificationError):
                verify_consistency_between(old, new, proof, signer.public_key)
    # the common prefix of the fork is consistent, as it should be
    verify_consistency_between(
        head_for(signer, forked, 8), new, consistency_doc(LOG, 8, 21)["proof"], signer.public_key
    )
    with pytest.raises(VerificationError):  # heads signed by another key
        verify_consistency_between(
            head_for(other_signer, LOG, 8), new, consistency_doc(LOG, 8, 21)["proof"], signer.public_key
        )
    doc = consistency_doc(LOG, 13, 21)
    with pytest.raises(VerificationError, match="old tree head"):
        verify_consistency_document(doc, signer.public_key, head_for(signer, unrelated, 13), new)


def test_cli(signer, tmp_path, capsys):
    key = tmp_path / "key.pem"
    key.write_text(signer.public_key_document()["public_key_pem"])
    key_json = tmp_path / "key.json"
    key_json.write_text(json.dumps(signer.public_key_document()))
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(make_receipt(signer)))
    assert main(["receipt", str(receipt), "--public-key", str(key)]) == 0
    assert main(["receipt", str(receipt), "--public-key", str(key_json)]) == 0
    tampered = json.loads(receipt.read_text())
    tampered["evidence"]["device"] = "cuda"
    receipt.write_text(json.dumps(tampered))
    assert main(["receipt", str(receipt), "--public-key", str(key)]) == 1
    assert "FAILED" in capsys.readouterr().err

    log, head = tmp_path / "log.json", tmp_path / "head.json"
    log.write_text(json.dumps({"entries": LOG}))
    head.write_text(json.dumps(head_for(signer, LOG)))
    assert main(["log", str(log), "--public-key", str(key), "--tree-head", str(head)]) == 0
    log.write_text(json.dumps(LOG[:-1]))
    assert main(["log", str(log), "--public-key", str(key), "--tree-head", str(head)]) == 1

    entry = tmp_path / "entry.json"
    entry.write_text(json.dumps(entry_doc(signer, LOG, 5)))
    assert main(["entry", str(entry), "--public-key", str(key)]) == 0
    assert main(["tree-head", str(head), "--public-key", str(key)]) == 0
    old = tmp_path / "old.json"
    old.write_text(json.dumps(head_for(signer, LOG, 9)))
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(consistency_doc(LOG, 9, 21)))
    args = ["consistency", str(proof), "--public-key", str(key), "--old-head", str(old), "--new-head", str(head)]
    assert main(args) == 0
    assert main(args[:4] + ["--old-head", str(head), "--new-head", str(old)]) == 1
    assert main(["log", str(tmp_path / "missing.json"), "--public-key", str(key)]) == 2
    assert main(["log", str(log), "--public-key", str(tmp_path / "missing.pem")]) == 2
    entry.write_text(json.dumps({"entry": "not an object"}))
    assert main(["entry", str(entry), "--public-key", str(key)]) == 1
