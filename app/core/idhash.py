"""Keyed hashes of sample ids and per-request commitment salts, under a master key kept outside the database.

Every value here is an HMAC-SHA256 (RFC 2104) under a secret that only the service's processes hold:

- a tenant's secret is ``HMAC(master, "unlearn/tenant/v1\\n" || tenant id)``, so two tenants never share a value;
- a sample id, once it has been asked to be forgotten, is stored as ``"hmac-sha256:" || hex HMAC(tenant secret,
  "unlearn/sample-id/v1\\n" || id as UTF-8)``. The service recognises a repeated request (409) by hashing the id
  again; a reader of the database who lacks the key cannot test a guessed id ("alice@example.com") against it;
- a request's commitment salt is ``HMAC(master, "unlearn/commitment-salt/v1\\n" || request id)``: 32 bytes that
  nobody can predict without the key, reproduced by the service whenever it shows the request (response, status,
  receipt) and stored nowhere, so the database never holds a commitment next to the salt that opens it;
- an idempotent request's fingerprint is a keyed hash of its body, so a stored fingerprint cannot be tested
  against guessed sample ids either.

The master key is 32 random bytes written as 64 hex characters to ``Settings.id_key_path`` (UNLEARN_ID_KEY_PATH).
When the file is absent it is generated on first use: written to a private temporary file (mode 0600) in the same
folder, fsynced, then hard-linked into place, so processes that start together all end up with one key. It is
never logged and never written to the database. Every API and worker host must read the same file; losing it
means repeated requests for erased ids answer 422 instead of 409 and old receipts' salts cannot be shown again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.core.config import get_settings
from app.core.secretfile import create_exclusive

log = logging.getLogger("app.idhash")

PREFIX = "hmac-sha256:"  # how a stored keyed hash of a sample id begins
KEY_BYTES = 32
_TENANT_TAG = b"unlearn/tenant/v1\n"
_ID_TAG = b"unlearn/sample-id/v1\n"
_SALT_TAG = b"unlearn/commitment-salt/v1\n"
_FINGERPRINT_TAG = b"unlearn/request-fingerprint/v1\n"


def is_hashed(value: str) -> bool:
    """True for a stored keyed hash (``hmac-sha256:`` and 64 hex digits), False for a plain sample id."""
    digest = value[len(PREFIX) :]
    return value.startswith(PREFIX) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


class IdHasher:
    """The keyed functions of one master key. Thread-safe (holds only bytes)."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise ValueError(f"the id-hash master key must be {KEY_BYTES} bytes")
        self._master = master_key
        self._tenants: dict[str, bytes] = {}

    def __repr__(self) -> str:  # never show the key
        return "IdHasher(<key>)"

    def _tenant_secret(self, tenant_id: str) -> bytes:
        secret = self._tenants.get(tenant_id)
        if secret is None:
            secret = hmac.new(self._master, _TENANT_TAG + tenant_id.encode("utf-8"), hashlib.sha256).digest()
            self._tenants[tenant_id] = secret
        return secret

    def hash_id(self, tenant_id: str, sample_id: str) -> str:
        """The stored form of an erased sample id: ``hmac-sha256:<hex>`` under the tenant's secret."""
        mac = hmac.new(self._tenant_secret(tenant_id), _ID_TAG + sample_id.encode("utf-8"), hashlib.sha256)
        return PREFIX + mac.hexdigest()

    def hash_ids(self, tenant_id: str, sample_ids: Iterable[str]) -> list[str]:
        """``hash_id`` of each id, in order."""
        secret = self._tenant_secret(tenant_id)
        base = hmac.new(secret, _ID_TAG, hashlib.sha256)
        out = []
        for sample_id in sample_ids:
            mac = base.copy()
            mac.update(sample_id.encode("utf-8"))
            out.append(PREFIX + mac.hexdigest())
        return out

    def request_salt(self, request_id: str) -> bytes:
        """The 32-byte salt of a request's commitments (deletion or erasure), the same every time it is asked."""
        return hmac.new(self._master, _SALT_TAG + request_id.encode("utf-8"), hashlib.sha256).digest()

    def fingerprint(self, tenant_id: str, payload: Any) -> str:
        """Keyed hex fingerprint of a request body (sorted-key JSON), for Idempotency-Key records."""
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return hmac.new(self._tenant_secret(tenant_id), _FINGERPRINT_TAG + body, hashlib.sha256).hexdigest()


def _read_key(path: Path) -> bytes:
    text = path.read_text("ascii").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path} does not hold a hex id-hash key") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path} does not hold a {KEY_BYTES}-byte id-hash key")
    if path.stat().st_mode & 0o077:
        log.warning("idhash.key_permissive path=%s mode=%o", path, path.stat().st_mode & 0o777)
    return key


def load_or_create_key(path: Path) -> bytes:
    """The master key in ``path``, generating and storing a new one when the file is absent."""
    path = Path(path)
    if path.exists():
        return _read_key(path)
    key = os.urandom(KEY_BYTES)
    if not create_exclusive(path, (key.hex() + "\n").encode("ascii")):
        return _read_key(path)  # another process created it first
    log.info("idhash.key_created path=%s", path)
    return key


@lru_cache
def _hasher_for(path: str) -> IdHasher:
    return IdHasher(load_or_create_key(Path(path)))


def get_id_hasher() -> IdHasher:
    """The hasher of Settings.id_key_path (loaded, or generated, once per process and path)."""
    return _hasher_for(str(get_settings().id_key_path))
