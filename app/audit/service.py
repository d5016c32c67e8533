"""Appending to the audit log, and the JSON form of an entry.

``append_entry`` runs inside the caller's transaction: the entry commits or rolls back with the change it
records. It takes the log's write lock first (held until that transaction ends), then reads the last entry, so
entries from many API processes and workers get gap-free sequence numbers and one unbroken chain.

Call it last in the transaction, just before the commit: the lock is held until the transaction ends, so every
other append waits for it. It relies on READ COMMITTED (PostgreSQL's default): under REPEATABLE READ the last
entry read could predate the lock, and the insert would fail on the primary key (never fork the chain).
"""

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from app.audit import repository
from app.audit.canonical import (
    GENESIS_HASH,
    compute_entry_hash,
    format_timestamp,
    normalize,
    sanitize_floats,
)
from app.audit.events import EventType, check_content
from app.audit.orm import AuditEntry
from app.core.db import utcnow

log = logging.getLogger("app.audit")


def entry_document(entry: AuditEntry) -> dict[str, Any]:
    """The entry as the API returns it; ``compute_entry_hash`` of this (without entry_hash) is entry_hash."""
    return {
        "seq": entry.seq,
        "created_at": format_timestamp(entry.created_at),
        "tenant_id": entry.tenant_id,
        "actor": entry.actor,
        "event_type": entry.event_type,
        "refs": entry.refs,
        "evidence": entry.evidence,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
    }


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def append_entry(
    session: Session,
    *,
    actor: str,
    event_type: str | EventType,
    tenant_id: str | None = None,
    refs: Mapping[str, Any] | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (flushes, never commits) and return it.

    ``refs`` holds identifiers, ``evidence`` measured figures and hashes; NaN and infinities become the strings
    "NaN", "Infinity", "-Infinity". Raises AuditContentError for an unknown event type, a secret, raw rows or
    sample ids, or more than 256 KiB of content.
    """
    if not actor or not isinstance(actor, str):
        raise ValueError("actor must be a non-empty string (an API key id or a worker name)")
    refs = normalize(sanitize_floats(dict(refs or {})))
    evidence = normalize(sanitize_floats(dict(evidence or {})))
    kind = check_content(str(event_type), refs, evidence)

    repository.lock_for_append(session)
    last = repository.last_entry(session)
    fields = {
        "seq": 1 if last is None else last.seq + 1,
        "created_at": utcnow(),
        "tenant_id": tenant_id,
        "actor": actor,
        "event_type": kind.value,
        "refs": refs,
        "evidence": evidence,
        "prev_hash": GENESIS_HASH if last is None else last.entry_hash,
    }
    entry_hash = compute_entry_hash(fields | {"created_at": format_timestamp(fields["created_at"])})
    entry = AuditEntry(
        **fields,
        model_id=_str_or_none(refs.get("model_id")),
        request_id=_str_or_none(refs.get("request_id")),
        entry_hash=entry_hash,
    )
    repository.add_entry(session, entry=entry)
    log.info("audit.appended seq=%s event_type=%s", entry.seq, entry.event_type)
    return entry
