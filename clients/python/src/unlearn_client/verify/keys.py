"""Ed25519 public keys and the signatures of audit entries, tree heads and receipts.

A signature covers a domain tag (so a tree-head signature can never pass as a receipt or entry signature) followed
by the canonical JSON of the signed object without its ``signature`` field. ``key_id`` is the hex sha256 of the raw
32-byte public key. An entry's signature covers its event (``EVENT_FIELDS``), behind ``ENTRY_DOMAIN``.
"""

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from unlearn_client.errors import VerificationError
from unlearn_client.verify.canonical import EVENT_FIELDS, canonical_json

TREE_HEAD_DOMAIN = b"unlearn-audit/tree-head/v1\n"
RECEIPT_DOMAIN = b"unlearn-audit/receipt/v1\n"
ENTRY_DOMAIN = b"unlearn-audit/entry/v1\n"


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    encoded = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return encoded.decode("ascii")


def load_public_key(data: bytes | str | Mapping[str, Any] | Ed25519PublicKey) -> Ed25519PublicKey:
    """A public key from PEM (SubjectPublicKeyInfo), the base64 of the raw 32 bytes, or the public-key document
    of ``GET /v1/audit/public-key`` (as a mapping or its JSON text)."""
    if isinstance(data, Ed25519PublicKey):
        return data
    if isinstance(data, Mapping):
        data = data.get("public_key_pem") or data.get("public_key_raw_b64") or ""
    if isinstance(data, str):
        data = data.encode("utf-8")
    text = data.strip()
    if text.startswith(b"{"):
        try:
            return load_public_key(json.loads(text))
        except ValueError as exc:
            raise VerificationError(f"public key document is not valid JSON: {exc}") from exc
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise VerificationError(f"not an Ed25519 public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationError("public key is not Ed25519")
    return key


def signed_message(domain: bytes, document: Mapping[str, Any]) -> bytes:
    return domain + canonical_json({k: v for k, v in document.items() if k != "signature"})


def event_message(event: Mapping[str, Any]) -> bytes:
    """The bytes an entry's signature covers: ``ENTRY_DOMAIN`` + the canonical JSON of its ``EVENT_FIELDS``."""
    missing = [f for f in EVENT_FIELDS if f not in event]
    if missing:
        raise VerificationError(f"event lacks fields {missing}")
    return ENTRY_DOMAIN + canonical_json({f: event[f] for f in EVENT_FIELDS})


def verify_event_signature(public_key: Ed25519PublicKey, entry: Mapping[str, Any]) -> None:
    """Raise VerificationError unless ``entry["signature"]`` is this key's signature over the entry's event."""
    signature = entry.get("signature")
    if not isinstance(signature, str):
        raise VerificationError("carries no signature")
    try:
        raw = base64.b64decode(signature, validate=True)
    except binascii.Error as exc:
        raise VerificationError("signature is not valid base64") from exc
    try:
        public_key.verify(raw, event_message(entry))
    except InvalidSignature as exc:
        raise VerificationError("signature is not the log key's signature over this content") from exc


def verify_signature(public_key: Ed25519PublicKey, domain: bytes, document: Mapping[str, Any]) -> None:
    """Raise VerificationError unless ``document["signature"]`` is this key's signature over the document."""
    if document.get("key_id") != key_id_of(public_key):
        raise VerificationError(
            f"signed by key {document.get('key_id')!r}, not by the given public key {key_id_of(public_key)}"
        )
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
    except binascii.Error as exc:
        raise VerificationError("signature is not valid base64") from exc
    try:
        public_key.verify(signature, signed_message(domain, document))
    except InvalidSignature as exc:
        raise VerificationError("signature does not verify") from exc
