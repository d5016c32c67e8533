"""Appending to the audit log, the JSON form of an entry, and deletion receipts from the database.

``append_entry`` runs inside the caller's transaction: the entry commits or rolls back with the change it
records. It takes the log's write lock first (held until that transaction ends), then reads the last entry, so
entries from many API processes and workers get gap-free sequence numbers and one unbroken chain.

Call it last in the transaction, just before the commit: the lock is held until the transaction ends, so every
other append waits for it. It relies on READ COMMITTED (PostgreSQL's default): under REPEATABLE READ the last
entry read could predate the lock, and the insert would fail on the primary key (never fork the chain).

Each entry is signed by this process (app.audit.signing.event_signer) before the lock is taken; events drained
from the outbox carry the signature of the process that recorded them, checked before they are chained.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import outbox, repository, tree
from app.audit.canonical import (
    GENESIS_HASH,
    compute_entry_hash,
    entry_document,
    format_timestamp,
)
from app.audit.events import EventType, prepare_entry
from app.audit.orm import AuditEntry
from app.audit.receipt import build_receipt
from app.audit.signing import Signer, event_signer
from app.core.db import utcnow
from app.core.idhash import get_id_hasher
from app.deletions.orm import DeletionRequest
from app.models.orm import ModelVersion

log = logging.getLogger("app.audit")


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
    signer: Signer | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (flushes, never commits) and return it.

    ``refs`` holds identifiers, ``evidence`` measured figures and hashes; NaN and infinities become the strings
    "NaN", "Infinity", "-Infinity". Raises AuditContentError for an unknown event type, a secret, raw rows or
    sample ids, or more than 256 KiB of content.
    """
    entry = {"actor": actor, "event_type": event_type, "tenant_id": tenant_id, "refs": refs, "evidence": evidence}
    return append_entries(session, [entry], signer=signer)[0]


def append_entries(
    session: Session, entries: Sequence[Mapping[str, Any]], *, signer: Signer | None = None
) -> list[AuditEntry]:
    """Append several entries, in the given order, in the caller's transaction (flushes, never commits).

    Each item holds the keyword arguments of ``append_entry`` (actor, event_type and optionally tenant_id, refs,
    evidence). Every entry is checked before the lock is taken; then the lock is taken once, the events waiting in
    the outbox are chained first (app.audit.outbox), the last entry is read once, and the entries are chained one
    after the other and inserted together: the same consecutive sequence numbers and chain as that many
    ``append_entry`` calls. Each entry is signed with ``signer`` (default: this process's key). Returns the
    caller's entries (not the drained ones).
    """
    if not entries:
        return []
    signer = signer or event_signer()
    created_at = utcnow()
    events = []
    for item in entries:
        kind, refs, evidence = prepare_entry(item["actor"], item["event_type"], item.get("refs"), item.get("evidence"))
        events.append(
            outbox.signed_event(
                signer, created_at=created_at, tenant_id=item.get("tenant_id"), actor=item["actor"],
                event_type=kind, refs=refs, evidence=evidence,
            )
        )  # fmt: skip
    repository.lock_for_append(session)
    drained, remove = outbox.take_locked(session, signer.public_key)
    rows = chain(session, [*drained, *events])
    outbox.remove_locked(session, remove)
    return rows[len(drained) :]


def chain(session: Session, events: Sequence[outbox.Event]) -> list[AuditEntry]:
    """Chain ``events`` (checked and signed) after the last entry, in order, and insert them together (one Core
    INSERT). The caller holds the append lock. Returns the entries as unattached rows."""
    if not events:
        return []
    last = repository.last_seq_and_hash(session)
    seq, prev_hash = (0, GENESIS_HASH) if last is None else last
    rows = []
    for event in events:
        seq += 1
        fields = event._asdict() | {"seq": seq, "prev_hash": prev_hash}
        prev_hash = compute_entry_hash(fields | {"created_at": format_timestamp(event.created_at)})
        refs = event.refs
        fields.update(
            model_id=_str_or_none(refs.get("model_id")),
            request_id=_str_or_none(refs.get("request_id")),
            entry_hash=prev_hash,
        )
        rows.append(fields)
    repository.insert_entries(session, rows=rows)
    repository.mark_appended(session)
    log.info("audit.appended seq=%s..%s entries=%s", rows[0]["seq"], rows[-1]["seq"], len(rows))
    return [AuditEntry(**row) for row in rows]


_REQUEST_COLUMNS = (
    "id",
    "model_id",
    "tenant_id",
    "status",
    "method",
    "purpose",
    "reason",
    "requester",
    "error",
    "sample_ids",
    "sample_ids_sha256",
    "evidence",
    "created_at",
    "started_at",
    "finished_at",
    "removed_by",
    "exact_as_of_version",
)


def _version(session: Session, model_id: str, version: int | None) -> dict[str, Any] | None:
    if version is None:
        return None
    row = session.scalars(
        select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == version)
    ).first()
    if row is None:
        return {"version": version}
    return {c: getattr(row, c) for c in ("version", "parent_version", "checkpoint_sha256", "checkpoint_size")} | {
        "state": row.state,
        "created_at": row.created_at,
    }


_TERMINAL = {"succeeded": "deletion.succeeded", "failed": "deletion.failed"}


def _logged_times(request_id: str, entries: Sequence[AuditEntry]) -> dict[str, Any]:
    """The request's times as the log recorded them: requested, first started, finished (None when not logged)."""
    first = {}
    for entry in entries:
        if entry.request_id == request_id:
            first.setdefault(entry.event_type, entry.created_at)
    finished = first.get("deletion.succeeded") or first.get("deletion.failed")
    return {
        "created_at": first.get("deletion.requested"),
        "started_at": first.get("deletion.started"),
        "finished_at": finished,
    }


def _request_entries(session: Session, request: DeletionRequest, size: int) -> list[AuditEntry]:
    """The request's entries and its base, result and exact versions' entries, among the first ``size``."""
    versions = {request.base_version, request.result_version, request.exact_as_of_version} - {None}
    return [
        entry
        for entry in repository.entries_for_request(session, request_id=request.id, model_id=request.model_id)
        if entry.seq <= size and (entry.request_id == request.id or (entry.refs or {}).get("version") in versions)
    ]


def deletion_receipt(
    session: Session, *, deletion_id: str, tenant_id: str | None, signer: Signer
) -> dict[str, Any] | None:
    """The signed receipt of a deletion request, or None when no such request is visible to ``tenant_id``
    (None: every tenant). Inclusion proofs are against the signed head of the whole log as it is now.

    The receipt's times are those of the request's entries in the log (requested, first started, finished), so
    that every field of the receipt that the log records is bound to it (unlearn_client.verify.checks.verify_receipt).
    """
    request = session.get(DeletionRequest, deletion_id)
    if request is None or (tenant_id is not None and request.tenant_id != tenant_id):
        return None
    size = tree.tree_size(session, signer)
    entries = _request_entries(session, request, size)
    outcome = {e.event_type for e in entries if e.request_id == request.id} & set(_TERMINAL.values())
    if outcome and _TERMINAL.get(request.status) not in outcome:
        # The request finished between reading it and reading the log: read it again (the log is newer).
        session.refresh(request)
        entries = _request_entries(session, request, size)
    audit = [
        {"inclusion_proof": tree.inclusion_proof(session, signer, seq=e.seq, size=size), "entry": entry_document(e)}
        for e in entries
    ]
    tree.check_served(session, signer, [item["entry"] for item in audit])
    fields = {c: getattr(request, c) for c in _REQUEST_COLUMNS} | _logged_times(request.id, entries)
    if request.status != "succeeded":
        fields["evidence"] = None  # the log records evidence only with success (an escalation's is in its entry)
    if request.sample_ids_sha256:  # the salt is derived from the service's key, never stored
        fields["commitment_salt"] = get_id_hasher().request_salt(request.id).hex()
    else:  # made before salted commitments: the unsalted one it was logged with (its ids may be hashed by now)
        requested = [a["entry"] for a in audit if a["entry"]["event_type"] == "deletion.requested"]
        if requested:
            fields["sample_ids_sha256"] = (requested[0]["evidence"] or {}).get("sample_ids_sha256")
    return build_receipt(
        request=fields,
        base_version=_version(session, request.model_id, request.base_version),
        result_version=_version(session, request.model_id, request.result_version),
        exact_version=_version(session, request.model_id, request.exact_as_of_version),
        audit=audit,
        tree_head=tree.signed_tree_head(session, signer, size),
        signer=signer,
        issued_at=utcnow(),
    )
