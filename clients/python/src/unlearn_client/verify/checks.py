"""Offline verification of audit entries, tree heads, checkpoints, proofs, whole logs and deletion receipts.

Needs only the log's Ed25519 public key (``GET /v1/audit/public-key``) and documents the endpoints return; no
database and no network. Every function raises ``VerificationError`` naming the first check that failed. The
command line over these functions is unlearn_client.verify.cli (``python -m unlearn_client.verify``).

``legacy_entries``: the first N entries of a log upgraded from a release that did not sign entries may carry no
signature.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from unlearn_client.errors import VerificationError
from unlearn_client.verify.binding import check_binding
from unlearn_client.verify.canonical import GENESIS_HASH, CanonicalError, compute_entry_hash
from unlearn_client.verify.keys import RECEIPT_DOMAIN, TREE_HEAD_DOMAIN, verify_event_signature, verify_signature
from unlearn_client.verify.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from unlearn_client.verify.note import open_checkpoint

__all__ = [
    "VerificationError",
    "verify_entry_hash",
    "verify_entry_signature",
    "verify_tree_head",
    "verify_checkpoint",
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


def verify_entry_signature(entry: Mapping[str, Any], public_key: Ed25519PublicKey, *, legacy_entries: int = 0) -> None:
    """Check that the entry carries the log key's signature over its event; the first ``legacy_entries`` entries
    (written before entries were signed) may carry none."""
    seq = _get(entry, "seq", "entry")
    if entry.get("signature") is None and isinstance(seq, int) and 0 < seq <= legacy_entries:
        return
    try:
        verify_event_signature(public_key, entry)
    except VerificationError as exc:
        raise VerificationError(f"entry {seq} {exc}") from exc


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


def verify_entry_inclusion(
    document: Mapping[str, Any], public_key: Ed25519PublicKey, *, legacy_entries: int = 0
) -> None:
    """Check ``GET /v1/audit/{seq}``: {entry, inclusion_proof, tree_head}: the entry's signature, and its inclusion
    in the signed tree."""
    size, root = verify_tree_head(_get(document, "tree_head", "document"), public_key)
    entry = _mapping(_get(document, "entry", "document"), "entry")
    _check_inclusion(entry, _get(document, "inclusion_proof", "document"), size, root)
    verify_entry_signature(entry, public_key, legacy_entries=legacy_entries)


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
    *,
    legacy_entries: int = 0,
) -> bytes:
    """Check a log from its first entry: sequence, hash chain, every entry hash; return the Merkle root.

    With the ``public_key``, every entry must carry the key's signature (all but the first ``legacy_entries``,
    written before entries were signed), and no event may appear twice. With a signed ``tree_head`` the log must
    hold at least its size, and the root over that many entries must be the signed one (so a removed, inserted or
    reordered entry, or a truncated log, is caught).
    """
    tree = MerkleTree()
    prev = GENESIS_HASH
    event_ids: set[str] = set()
    for i, entry in enumerate(entries):
        seq = _get(entry, "seq", "entry")
        if seq != i + 1:
            raise VerificationError(f"entry at position {i + 1} has seq {seq}: the log is not gap-free from 1")
        if _get(entry, "prev_hash", "entry") != prev:
            raise VerificationError(f"entry {seq}: prev_hash does not chain to entry {seq - 1}")
        tree.append(leaf_hash(verify_entry_hash(entry)))
        prev = entry["entry_hash"]
        if public_key is not None:
            verify_entry_signature(entry, public_key, legacy_entries=legacy_entries)
            event_id = entry.get("event_id")
            if event_id is not None and event_id in event_ids:
                raise VerificationError(f"entry {seq}: event {event_id} is already in the log (a replay)")
            event_ids.add(event_id)
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


def verify_receipt(receipt: Mapping[str, Any], public_key: Ed25519PublicKey, *, legacy_entries: int = 0) -> None:
    """Check a deletion receipt: its signature, its tree head, every audit entry's signature and inclusion, and
    that every field of the receipt the log records equals the logged value (unlearn_client.verify.binding)."""
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
        verify_entry_signature(entry, public_key, legacy_entries=legacy_entries)
        if not _concerns(entry, request):
            raise VerificationError(f"entry {entry['seq']} does not concern request {request.get('id')}")
        entries.append(entry)
    seqs = [e["seq"] for e in entries]
    if seqs != sorted(set(seqs)):
        raise VerificationError("receipt's audit entries are not in increasing seq order")
    check_binding(receipt, entries)


def verify_checkpoint(note: str, public_key: Ed25519PublicKey, origin: str) -> tuple[int, bytes]:
    """Check a C2SP checkpoint (``GET /v1/audit/checkpoint``) signed by the log's key under ``origin``; return
    (tree size, root hash)."""
    return open_checkpoint(note, public_key, origin)
