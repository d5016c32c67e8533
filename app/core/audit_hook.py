"""The one call the API's services make to record an audit entry in the caller's transaction."""

from typing import Any

from sqlalchemy.orm import Session

from app.audit.service import append_entry


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
