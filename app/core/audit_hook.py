"""Adapter to the audit log: appends an entry in the caller's transaction when app.audit provides one."""

import logging
from typing import Any

from sqlalchemy.orm import Session

from app.core.logging import log_event

log = logging.getLogger("app.audit_hook")


def _append_entry():
    try:
        from app.audit.service import append_entry
    except ImportError:
        return None
    return append_entry


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
    append_entry = _append_entry()
    if append_entry is None:
        log_event(log, "audit.unavailable", level=logging.WARNING, event_type=event_type)
        return
    append_entry(session, actor=actor, event_type=event_type, tenant_id=tenant_id, refs=refs, evidence=evidence or {})
