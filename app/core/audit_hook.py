"""The calls services make to record audit entries in the caller's transaction.

The API records through the outbox (``audit``): no lock on the request path; the events are chained by the
workers or by the next chained append or audit read (app.audit.outbox). Workers append to the chain directly
(``audit_chained``, ``audit_many``), which drains the outbox first.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from app.audit import outbox
from app.audit.service import append_entries, append_entry


def audit(
    session: Session,
    *,
    actor: str,
    event_type: str,
    tenant_id: str,
    refs: dict[str, Any],
    evidence: dict[str, Any] | None = None,
) -> None:
    """Record an audit event inside the current transaction (so it commits or rolls back with the change)."""
    outbox.record(session, actor=actor, event_type=event_type, tenant_id=tenant_id, refs=refs, evidence=evidence)


def audit_chained(
    session: Session,
    *,
    actor: str,
    event_type: str,
    tenant_id: str,
    refs: dict[str, Any],
    evidence: dict[str, Any] | None = None,
) -> None:
    """Append an audit entry to the chain inside the current transaction (takes the append lock until commit)."""
    append_entry(session, actor=actor, event_type=event_type, tenant_id=tenant_id, refs=refs, evidence=evidence or {})


def audit_many(session: Session, entries: Sequence[Mapping[str, Any]]) -> None:
    """Append several audit entries, in order, to the chain inside the current transaction: one lock, one INSERT."""
    append_entries(session, entries)
