"""Offline checks of what the service's audit log signs: tree heads, inclusion and consistency proofs, whole logs
and deletion receipts, with the log's Ed25519 public key pinned by the user.

    from unlearn_client.verify import load_public_key, verify_receipt
    key = load_public_key(open("audit-key.pem").read())
    verify_receipt(receipt, key)              # raises VerificationError naming the first failed check

Trees follow RFC 6962 / RFC 9162 (merkle.py), checkpoints C2SP tlog-checkpoint (note.py); the encodings are in
canonical.py and keys.py, what binds a receipt to its entries in binding.py.
The service builds its log with these same modules, so a change to an encoding is made in one place.
"""

from collections.abc import Mapping
from typing import Any

from unlearn_client.errors import VerificationError
from unlearn_client.verify.checks import (
    verify_checkpoint,
    verify_consistency_between,
    verify_consistency_document,
    verify_entry_hash,
    verify_entry_inclusion,
    verify_entry_signature,
    verify_log,
    verify_receipt,
    verify_tree_head,
)
from unlearn_client.verify.keys import key_id_of, load_public_key

__all__ = [
    "VerificationError",
    "key_id_of",
    "load_public_key",
    "verify_checkpoint",
    "verify_consistency_between",
    "verify_consistency_document",
    "verify_entry_hash",
    "verify_entry_inclusion",
    "verify_entry_signature",
    "verify_log",
    "verify_receipt",
    "verify_receipt_with",
    "verify_tree_head",
]


def verify_receipt_with(receipt: Mapping[str, Any], public_key: Any) -> str:
    """Verify a receipt against a public key (PEM, base64 raw key, the public-key document, or a key object);
    return the key id it was checked against. Raises VerificationError when any check fails."""
    key = load_public_key(public_key)
    verify_receipt(receipt, key)
    return key_id_of(key)
