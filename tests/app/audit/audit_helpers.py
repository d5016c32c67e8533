"""Helpers that build audit entries and logs in memory, exactly as the service would."""

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from unlearn_client.verify.merkle import MerkleTree, leaf_hash

from app.audit.canonical import GENESIS_HASH, compute_entry_hash, format_timestamp, normalize
from app.audit.signing import Signer, new_event_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LOG_SIGNER = Signer(Ed25519PrivateKey.generate())  # the key of the in-memory logs below


def make_entry(seq: int, prev_hash: str, signer: Signer | None = LOG_SIGNER, **fields: Any) -> dict[str, Any]:
    """Entry ``seq`` chained to ``prev_hash``, signed by ``signer`` (None: unsigned, as before signatures)."""
    entry = {
        "seq": seq,
        "created_at": format_timestamp(T0 + timedelta(seconds=seq, microseconds=seq)),
        "tenant_id": "tenant-1",
        "actor": "key-1",
        "event_type": "model.registered",
        "refs": {"model_id": f"m{seq}"},
        "evidence": {"n": seq, "auc": 0.5 + seq / 1000},
        "prev_hash": prev_hash,
    }
    entry.update(fields)
    entry = normalize(entry)
    if signer is not None:
        entry["event_id"] = new_event_id()
        entry["signature"] = signer.sign_event(entry)
    entry["entry_hash"] = compute_entry_hash(entry)
    return entry


def make_log(
    n: int, specs: list[dict[str, Any]] | None = None, signer: Signer | None = LOG_SIGNER
) -> list[dict[str, Any]]:
    """n entries chained from the genesis hash; ``specs[i]`` overrides fields of entry i."""
    entries: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    for i in range(n):
        entry = make_entry(i + 1, prev, signer, **((specs or [])[i] if specs and i < len(specs) else {}))
        entries.append(entry)
        prev = entry["entry_hash"]
    return entries


def tree_of(entries: list[dict[str, Any]]) -> MerkleTree:
    return MerkleTree([leaf_hash(bytes.fromhex(e["entry_hash"])) for e in entries])


def rechain(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Renumber and re-hash entries from the genesis hash (what a forger with database access would do; the
    signatures cover the events, not their places, so they still verify: only signed tree heads catch this)."""
    out, prev = [], GENESIS_HASH
    for i, e in enumerate(entries):
        e = {k: v for k, v in e.items() if k != "entry_hash"} | {"seq": i + 1, "prev_hash": prev}
        e["entry_hash"] = compute_entry_hash(e)
        out.append(e)
        prev = e["entry_hash"]
    return out


def flip_hex(value: str, i: int) -> str:
    """Hex string with one bit of byte i flipped."""
    raw = bytearray(bytes.fromhex(value))
    raw[i] ^= 0x01
    return raw.hex()


def flip_b64(value: str, i: int) -> str:
    """Base64 string with one bit of decoded byte i flipped."""
    raw = bytearray(base64.b64decode(value))
    raw[i] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()
