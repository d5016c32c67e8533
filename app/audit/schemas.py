"""Response bodies of the audit endpoints that the OpenAPI document describes field by field."""

from typing import Any

from pydantic import BaseModel


class AuditEntryOut(BaseModel):
    """An audit entry as stored; ``entry_hash`` is the sha256 of its canonical form (docs/audit.md)."""

    seq: int
    # UTC, microseconds, Z suffix: the exact text the hash covers.
    created_at: str
    tenant_id: str | None
    # The key id (or worker) that caused the event.
    actor: str
    event_type: str
    # Identifiers: model_id, request_id (the deletion's id), version, ...
    refs: dict[str, Any]
    # Measured figures, hashes and commitments; never rows or raw sample ids.
    evidence: dict[str, Any]
    prev_hash: str
    entry_hash: str
    # Random id and Ed25519 signature of the event (None on entries written before entries were signed).
    event_id: str | None = None
    signature: str | None = None
