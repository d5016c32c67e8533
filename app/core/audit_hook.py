"""The one call the API's services make to record an audit entry in the caller's transaction."""

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

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
    """Record an audit entry inside the current transaction (so it commits or rolls back with the change)."""
    append_entry(session, actor=actor, event_type=event_type, tenant_id=tenant_id, refs=refs, evidence=evidence or {})


def audit_many(session: Session, entries: Sequence[Mapping[str, Any]]) -> None:
    """Record several audit entries, in order, inside the current transaction: one lock, one INSERT."""
    append_entries(session, entries)
