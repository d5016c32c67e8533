"""Ed25519 keys and signatures for audit entries, tree heads and receipts.

A signature covers a domain tag (so a tree-head signature can never pass as a receipt or entry signature) followed
by the canonical JSON of the signed object without its ``signature`` field. ``key_id`` is the hex sha256 of the raw
32-byte public key. Those encodings and the checks are unlearn_client.verify.keys; this module holds the private
key and signs.

Every audit entry is signed by the process that creates its event (the API for the events it records in the
outbox, a worker for the entries it appends), over the event's content (``EVENT_FIELDS``: a random ``event_id``,
time, tenant, actor, type, refs, evidence), before the event has a place in the chain. Someone who can write to
the database but does not hold the key cannot make an entry that verifies, and cannot replay a genuine one: its
``event_id`` is unique in the log. Each process loads the key once (``signer_at``); the same file must be readable
by the API and by every worker.

The private key is a PKCS#8 PEM file at ``Settings.audit_signing_key_path``. When absent it is generated on first
use: written to a private temporary file (mode 0600) in the same folder, fsynced, then hard-linked into place, so
readers never see a partial file and, when two processes start at once, exactly one key wins and both use it.
"""

import base64
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from unlearn_client.verify.keys import (
    ENTRY_DOMAIN,
    RECEIPT_DOMAIN,
    TREE_HEAD_DOMAIN,
    event_message,
    key_id_of,
    load_public_key,
    public_key_pem,
    raw_public_key,
    signed_message,
    verify_event_signature,
    verify_signature,
)
from unlearn_client.verify.note import DEFAULT_ORIGIN_PREFIX

from app.core.secretfile import create_exclusive

if TYPE_CHECKING:
    from app.core.config import Settings

__all__ = [
    "DEFAULT_ORIGIN_PREFIX",
    "ENTRY_DOMAIN",
    "RECEIPT_DOMAIN",
    "TREE_HEAD_DOMAIN",
    "Signer",
    "event_message",
    "key_id_of",
    "load_or_create_signing_key",
    "load_public_key",
    "new_event_id",
    "public_key_pem",
    "raw_public_key",
    "signed_message",
    "verify_event_signature",
    "verify_signature",
]

log = logging.getLogger(__name__)

TREE_HEAD_FIELDS = ("tree_size", "root_hash", "timestamp", "key_id")


def new_event_id() -> str:
    """128 random bits, hex: names one event for good (a copy of it is a replay)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Signer:
    """The log's key, and how the log signed with it is named and published."""

    private_key: Ed25519PrivateKey
    # The log's name in its C2SP checkpoints (also the note key name); None: DEFAULT_ORIGIN_PREFIX + key id.
    origin: str | None = None
    # File the newest checkpoint is written to each time a larger tree head is signed (None: not written).
    checkpoint_path: Path | None = None
    # Entries at the start of the log written before entries were signed: accepted without a signature.
    legacy_entries: int = 0

    @cached_property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @cached_property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    @property
    def note_origin(self) -> str:
        return self.origin or DEFAULT_ORIGIN_PREFIX + self.key_id[:16]

    def sign_event(self, event: Mapping[str, Any]) -> str:
        """Base64 signature over the event (``event_message``)."""
        return base64.b64encode(self.private_key.sign(event_message(event))).decode("ascii")

    def sign(self, domain: bytes, document: Mapping[str, Any]) -> dict[str, Any]:
        """``document`` with ``key_id`` set and ``signature`` (base64) added."""
        body = {k: v for k, v in document.items() if k != "signature"}
        body["key_id"] = self.key_id
        signature = self.private_key.sign(signed_message(domain, body))
        return {**body, "signature": base64.b64encode(signature).decode("ascii")}

    def sign_tree_head(self, tree_size: int, root_hash: bytes, timestamp_ms: int | None = None) -> dict[str, Any]:
        """Signed tree head ``{tree_size, root_hash (hex), timestamp (ms since epoch), key_id, signature}``."""
        timestamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        head = {"tree_size": tree_size, "root_hash": root_hash.hex(), "timestamp": timestamp}
        return self.sign(TREE_HEAD_DOMAIN, head)

    def public_key_document(self) -> dict[str, str]:
        return {
            "algorithm": "Ed25519",
            "key_id": self.key_id,
            "public_key_pem": public_key_pem(self.public_key),
            "public_key_raw_b64": base64.b64encode(raw_public_key(self.public_key)).decode("ascii"),
        }


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    if path.stat().st_mode & 0o077:
        log.warning("audit.signing_key_permissive path=%s mode=%o", path, path.stat().st_mode & 0o777)
    return key


_loaded: dict[Path, Signer] = {}
_loaded_lock = threading.Lock()


def signer_at(path: Path) -> Signer:
    """This process's signer for the key file at ``path``: loaded (or created) once, then reused."""
    where = Path(path).absolute()
    with _loaded_lock:
        signer = _loaded.get(where)
        if signer is None:
            signer = _loaded[where] = load_or_create_signing_key(where)
        return signer


def event_signer() -> Signer:
    """The key this process signs the audit events it creates with (Settings.audit_signing_key_path)."""
    from app.core.config import get_settings

    return signer_at(get_settings().audit_signing_key_path)


def log_signer(settings: "Settings") -> Signer:
    """The signer of tree heads, checkpoints and receipts as configured (origin, checkpoint file, legacy entries)."""
    from app.audit.checkpoint import check_origin

    signer = signer_at(settings.audit_signing_key_path)
    configured = replace(
        signer,
        origin=settings.audit_log_origin,
        checkpoint_path=settings.audit_checkpoint_path,
        legacy_entries=settings.audit_legacy_entries,
    )
    check_origin(configured.note_origin)
    return configured


def load_or_create_signing_key(path: Path) -> Signer:
    """The signer for the PEM key at ``path``, generating and storing a new key when the file is absent."""
    path = Path(path)
    if path.exists():
        return Signer(_read_private_key(path))
    key = Ed25519PrivateKey.generate()
    if not create_exclusive(path, _private_pem(key)):
        return Signer(_read_private_key(path))  # another process created it first
    log.info("audit.signing_key_created path=%s key_id=%s", path, key_id_of(key.public_key()))
    return Signer(key)
