"""Offline verification of audit entries, tree heads, proofs, whole logs and deletion receipts.

Needs only the log's Ed25519 public key (``GET /v1/audit/public-key``) and documents the endpoints return; no
database and no network. Every function raises ``VerificationError`` naming the first check that failed.

Command line (exit status 0 = verified, 1 = rejected, 2 = usage error)::

    python -m app.audit.verify receipt receipt.json --public-key key.pem
    python -m app.audit.verify entry entry.json --public-key key.pem            # GET /v1/audit/{seq}
    python -m app.audit.verify tree-head head.json --public-key key.pem         # GET /v1/audit/tree-head
    python -m app.audit.verify consistency proof.json --public-key key.pem \\
        --old-head head-then.json --new-head head-now.json                      # GET /v1/audit/consistency
    python -m app.audit.verify log entries.json --public-key key.pem [--tree-head head.json]

``--public-key`` takes a PEM file, a file with the base64 raw key, or the JSON of ``GET /v1/audit/public-key``.
``entries.json`` is a JSON array of entries, or an object with an ``entries`` array (pages of ``GET /v1/audit``
concatenated from ``after_seq=0``).
"""

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.audit.canonical import GENESIS_HASH, commit_sample_ids, compute_entry_hash
from app.audit.exceptions import CanonicalError, VerificationError
from app.audit.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from app.audit.signing import RECEIPT_DOMAIN, TREE_HEAD_DOMAIN, verify_signature

__all__ = [
    "VerificationError",
    "verify_entry_hash",
    "verify_tree_head",
    "verify_entry_inclusion",
    "verify_consistency_between",
    "verify_log",
    "verify_receipt",
]


def _hex32(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise VerificationError(f"{what} is not a 64-character hex sha256")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise VerificationError(f"{what} is not hex") from exc


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise VerificationError(f"{what} is not a non-negative integer")
    return value


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise VerificationError(f"{what} is not a JSON object")
    return value


def _get(doc: Any, key: str, what: str) -> Any:
    if not isinstance(doc, Mapping) or key not in doc:
        raise VerificationError(f"{what} lacks {key!r}")
    return doc[key]


def verify_entry_hash(entry: Mapping[str, Any]) -> bytes:
    """Recompute the entry's hash from its fields; return it (raw bytes) when it matches ``entry_hash``."""
    _mapping(entry, "entry")
    for part in ("refs", "evidence"):
        if not isinstance(entry.get(part), Mapping):
            raise VerificationError(f"entry {entry.get('seq')}: {part} is not a JSON object")
    seq = _get(entry, "seq", "entry")
    try:
        computed = compute_entry_hash(entry)
    except CanonicalError as exc:
        raise VerificationError(f"entry {seq}: {exc}") from exc
    if computed != _get(entry, "entry_hash", "entry"):
        raise VerificationError(f"entry {seq}: entry_hash does not match the entry's contents")
    return bytes.fromhex(computed)


def verify_tree_head(head: Mapping[str, Any], public_key: Ed25519PublicKey) -> tuple[int, bytes]:
    """Check a signed tree head; return (tree_size, root hash)."""
    size = _int(_get(head, "tree_size", "tree head"), "tree_size")
    root = _hex32(_get(head, "root_hash", "tree head"), "root_hash")
    _int(_get(head, "timestamp", "tree head"), "timestamp")
    try:
        verify_signature(public_key, TREE_HEAD_DOMAIN, head)
    except VerificationError as exc:
        raise VerificationError(f"tree head: {exc}") from exc
    return size, root


def _check_inclusion(entry: Mapping[str, Any], proof: Mapping[str, Any], size: int, root: bytes) -> None:
    seq = _int(_get(entry, "seq", "entry"), "seq")
    digest = verify_entry_hash(entry)
    index = _int(_get(proof, "leaf_index", "inclusion proof"), "leaf_index")
    if index != seq - 1:
        raise VerificationError(f"entry {seq}: inclusion proof is for leaf {index}, not {seq - 1}")
    if _get(proof, "tree_size", "inclusion proof") != size:
        raise VerificationError(f"entry {seq}: inclusion proof is for another tree size than the tree head")
    path = _get(proof, "audit_path", "inclusion proof")
    if not isinstance(path, list):
        raise VerificationError("audit_path is not a list")
    nodes = [_hex32(p, "audit_path node") for p in path]
    try:
        verify_inclusion(index, size, leaf_hash(digest), nodes, root)
    except VerificationError as exc:
        raise VerificationError(f"entry {seq}: {exc}") from exc


def verify_entry_inclusion(document: Mapping[str, Any], public_key: Ed25519PublicKey) -> None:
    """Check ``GET /v1/audit/{seq}``: {entry, inclusion_proof, tree_head}."""
    size, root = verify_tree_head(_get(document, "tree_head", "document"), public_key)
    _check_inclusion(_get(document, "entry", "document"), _get(document, "inclusion_proof", "document"), size, root)


def verify_consistency_between(
    old_head: Mapping[str, Any],
    new_head: Mapping[str, Any],
    proof: Sequence[str],
    public_key: Ed25519PublicKey,
) -> None:
    """Check that the log behind signed head ``old_head`` is a prefix of the log behind ``new_head``."""
    m, r1 = verify_tree_head(old_head, public_key)
    n, r2 = verify_tree_head(new_head, public_key)
    if m > n:
        raise VerificationError(f"old tree size {m} is larger than new tree size {n}")
    verify_consistency(m, n, r1, r2, [_hex32(p, "consistency proof node") for p in proof])


def verify_consistency_document(
    document: Mapping[str, Any],
    public_key: Ed25519PublicKey,
    old_head: Mapping[str, Any] | None = None,
    new_head: Mapping[str, Any] | None = None,
) -> None:
    """Check ``GET /v1/audit/consistency``; the signed heads of both sizes, when given, pin the two roots."""
    m = _int(_get(document, "first_size", "consistency document"), "first_size")
    n = _int(_get(document, "second_size", "consistency document"), "second_size")
    r1 = _hex32(_get(document, "first_root", "consistency document"), "first_root")
    r2 = _hex32(_get(document, "second_root", "consistency document"), "second_root")
    for head, size, root, label in ((old_head, m, r1, "old"), (new_head, n, r2, "new")):
        if head is not None:
            if verify_tree_head(head, public_key) != (size, root):
                raise VerificationError(f"{label} tree head does not match the proof's size and root")
    proof = _get(document, "proof", "consistency document")
    verify_consistency(m, n, r1, r2, [_hex32(p, "consistency proof node") for p in proof])


def verify_log(
    entries: Sequence[Mapping[str, Any]],
    public_key: Ed25519PublicKey | None = None,
    tree_head: Mapping[str, Any] | None = None,
) -> bytes:
    """Check a log from its first entry: sequence, hash chain, every entry hash; return the Merkle root.

    With a signed ``tree_head`` the log must hold at least its size, and the root over that many entries must be
    the signed one (so a removed, inserted or reordered entry, or a truncated log, is caught).
    """
    tree = MerkleTree()
    prev = GENESIS_HASH
    for i, entry in enumerate(entries):
        seq = _get(entry, "seq", "entry")
        if seq != i + 1:
            raise VerificationError(f"entry at position {i + 1} has seq {seq}: the log is not gap-free from 1")
        if _get(entry, "prev_hash", "entry") != prev:
            raise VerificationError(f"entry {seq}: prev_hash does not chain to entry {seq - 1}")
        tree.append(leaf_hash(verify_entry_hash(entry)))
        prev = entry["entry_hash"]
    if tree_head is not None:
        if public_key is None:
            raise VerificationError("a public key is needed to check the tree head")
        size, root = verify_tree_head(tree_head, public_key)
        if size > len(tree):
            raise VerificationError(f"tree head covers {size} entries; the log holds only {len(tree)}")
        if tree.root(size) != root:
            raise VerificationError(f"root of the first {size} entries differs from the signed tree head")
    return tree.root()


def _concerns(entry: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    refs = entry.get("refs") or {}
    if refs.get("request_id") == request.get("id"):
        return refs.get("model_id", request.get("model_id")) == request.get("model_id")
    return str(entry.get("event_type", "")).startswith("version.") and refs.get("model_id") == request.get("model_id")


def _field(entry: Mapping[str, Any], key: str) -> Any:
    """A value from the entry's refs, else its evidence (None when in neither)."""
    for part in ("refs", "evidence"):
        values = entry.get(part) or {}
        if key in values:
            return values[key]
    return None


def _retrained_from_scratch(created: Mapping[str, Any], version: int) -> bool:
    """The version.created entry says its checkpoint was trained from scratch on the live rows: an `exact` block
    covering the version, or (versions published before the block existed) a `retrain` or `consolidation`."""
    evidence = created.get("evidence") or {}
    exact = evidence.get("exact")
    if isinstance(exact, Mapping):
        return exact.get("covers_requests_through_version") == version
    return evidence.get("method") in ("retrain", "consolidation")


def verify_receipt(receipt: Mapping[str, Any], public_key: Ed25519PublicKey) -> None:
    """Check a deletion receipt: its signature, its tree head, every audit entry's inclusion, and that the
    entries tell the same story as the receipt (request, sample ids, versions, checkpoint hashes, evidence)."""
    try:
        verify_signature(public_key, RECEIPT_DOMAIN, receipt)
    except VerificationError as exc:
        raise VerificationError(f"receipt: {exc}") from exc
    size, root = verify_tree_head(_get(receipt, "tree_head", "receipt"), public_key)
    request = _mapping(_get(receipt, "request", "receipt"), "request")
    for key in ("base_version", "result_version", "evidence"):
        if receipt.get(key) is not None:
            _mapping(receipt[key], key)
    items = _get(receipt, "audit", "receipt")
    if not isinstance(items, list) or not items:
        raise VerificationError("receipt holds no audit entries")
    entries = []
    for item in items:
        entry = _mapping(_get(item, "entry", "audit item"), "audit entry")
        _check_inclusion(entry, _get(item, "inclusion_proof", "audit item"), size, root)
        if not _concerns(entry, request):
            raise VerificationError(f"entry {entry['seq']} does not concern request {request.get('id')}")
        entries.append(entry)
    seqs = [e["seq"] for e in entries]
    if seqs != sorted(set(seqs)):
        raise VerificationError("receipt's audit entries are not in increasing seq order")
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for e in entries:
        by_type.setdefault(e["event_type"], []).append(e)

    requested = by_type.get("deletion.requested", [])
    if not requested:
        raise VerificationError("receipt lacks the deletion.requested entry")
    ids = request.get("sample_ids")
    claimed = request.get("sample_ids_sha256")
    if ids is not None and claimed is not None and commit_sample_ids(ids) != claimed:
        raise VerificationError("request's sample_ids do not match its sample_ids_sha256")
    logged = _field(requested[0], "sample_ids_sha256")
    if logged is not None and logged != (claimed or (commit_sample_ids(ids) if ids is not None else None)):
        raise VerificationError("sample ids in the receipt differ from those committed in the log")

    status = request.get("status")
    outcome = {"succeeded": "deletion.succeeded", "failed": "deletion.failed"}.get(str(status))
    if outcome and not by_type.get(outcome):
        raise VerificationError(f"request status is {status} but the receipt lacks a {outcome} entry")
    for e in by_type.get("deletion.succeeded", []):
        for key, logged_key in (("base_version", "base_version"), ("result_version", "result_version"),
                                ("result_version", "version")):  # fmt: skip
            version = receipt.get(key)
            logged = (e.get("refs") or {}).get(logged_key)
            if logged is not None and (version is None or version.get("version") != logged):
                raise VerificationError(f"{key} in the receipt differs from entry {e['seq']}")
        logged = _field(e, "forget_commitment")
        if logged is not None and logged != receipt.get("forget_commitment"):
            raise VerificationError(f"forget_commitment in the receipt differs from entry {e['seq']}")
        logged_evidence = e.get("evidence") or {}
        evidence = receipt.get("evidence") or {}
        for key in sorted(set(logged_evidence) & set(evidence)):
            if logged_evidence[key] != evidence[key]:
                raise VerificationError(f"evidence field {key!r} in the receipt differs from entry {e['seq']}")
    exact = request.get("exact_as_of_version")
    if exact is not None:
        created = [e for e in by_type.get("version.created", []) if (e.get("refs") or {}).get("version") == exact]
        if not any(_retrained_from_scratch(e, exact) for e in created):
            raise VerificationError(f"no entry shows version {exact} retrained from scratch (exact_as_of_version)")
        result = (receipt.get("result_version") or {}).get("version")
        if result is None or result > exact:
            raise VerificationError("exact_as_of_version precedes the request's result version")
    for key in ("base_version", "result_version", "exact_version"):
        version = receipt.get(key)
        if not version:
            continue
        for e in by_type.get("version.created", []) + by_type.get("version.purged", []):
            if (e.get("refs") or {}).get("version") == version.get("version"):
                logged = _field(e, "checkpoint_sha256")
                if logged is not None and logged != version.get("checkpoint_sha256"):
                    raise VerificationError(f"{key} checkpoint_sha256 differs from entry {e['seq']}")


if __name__ == "__main__":
    from app.audit.verify_cli import main

    sys.exit(main())
