"""The audit outbox: how the API records events without waiting for the log's append lock.

A request writes its event into ``audit_outbox`` in its own transaction (one INSERT, no lock, no read of the
chain), so the event commits or rolls back with the change it records, and requests from any number of API
processes never wait for each other. The sequencer then chains outbox rows into ``audit_entries`` in id order,
in batches, under the append lock, and deletes them in the same transaction:

- every chained append (``service.append_entries``: the workers' events) drains the outbox first, so an event is
  chained before any event that depends on it (a request is committed before a worker can start it);
- every reader of the log (the audit endpoints, receipts) drains it before reading, so what it returns includes
  every committed event;
- the workers' maintenance thread drains it once a second (workers.__main__), so the chain keeps up when
  nothing else appends. The API processes never chain: a CPU-bound thread there would hold the GIL while
  requests wait on it (in the service benchmark it added about 30 ms to the p99 latency of a POST).

Rows are deleted by id, never by range: under READ COMMITTED a row with a smaller id can commit after a larger
one was read, and it must stay for the next drain.
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.orm import Session

from app.audit import repository
from app.audit.events import prepare_entry
from app.audit.orm import AuditOutboxEntry
from app.core.db import utcnow

DELETE_CHUNK = 900  # ids per DELETE ... IN (...) (below SQLite's bound-parameter limit)

# An event as it is chained: (created_at, tenant_id, actor, event_type, refs, evidence), already checked.
Event = tuple[datetime, str | None, str, str, dict[str, Any], dict[str, Any]]
_table = AuditOutboxEntry.__table__
_INSERT = insert(_table)


def record(
    session: Session,
    *,
    actor: str,
    event_type: str,
    tenant_id: str | None,
    refs: Mapping[str, Any] | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> None:
    """Record an event in the caller's transaction (checked as a chained entry is: AuditContentError)."""
    kind, refs, evidence = prepare_entry(actor, event_type, refs, evidence)
    session.connection().execute(
        _INSERT,
        {"created_at": utcnow(), "tenant_id": tenant_id, "actor": actor, "event_type": kind, "refs": refs,
         "evidence": evidence},
    )  # fmt: skip


def drain_locked(session: Session) -> list[Event]:
    """Read and delete every committed outbox row, in id order; the caller holds the append lock and chains the
    returned events in the same transaction."""
    rows = session.execute(
        select(
            _table.c.id,
            _table.c.created_at,
            _table.c.tenant_id,
            _table.c.actor,
            _table.c.event_type,
            _table.c.refs,
            _table.c.evidence,
        ).order_by(_table.c.id)
    ).all()
    ids = [row[0] for row in rows]
    for start in range(0, len(ids), DELETE_CHUNK):
        session.execute(delete(_table).where(_table.c.id.in_(ids[start : start + DELETE_CHUNK])))
    return [tuple(row[1:]) for row in rows]


def pending(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(_table.c.id.is_not(None)))))


def sequence(session: Session) -> int:
    """Chain whatever the outbox holds, in the caller's transaction (the caller commits); returns how many
    events were chained. Takes the append lock only when there is something to chain."""
    from app.audit.service import chain

    if not pending(session):
        return 0
    repository.lock_for_append(session)
    return len(chain(session, drain_locked(session)))


def sequence_committed(sessionmaker: Callable[[], Session]) -> int:
    """``sequence`` in a transaction of its own, committed."""
    with sessionmaker() as session:
        count = sequence(session)
        session.commit()
        return count
