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

Every event is signed by the process that records it (app.audit.signing). The sequencer verifies each signature
before chaining: an event planted by someone who can write to the database but does not hold the key is refused,
stays in the outbox (the triggers let only chained events be deleted) and raises an alarm (app.audit.alarms); a
copy of an event already chained is dropped with an alarm.
"""

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, exists, insert, select
from sqlalchemy.orm import Session

from app.audit import repository
from app.audit.alarms import alarm
from app.audit.canonical import format_timestamp
from app.audit.events import prepare_entry
from app.audit.exceptions import VerificationError
from app.audit.orm import AuditOutboxEntry
from app.audit.signing import Signer, event_signer, new_event_id, verify_event_signature
from app.core.db import utcnow

DELETE_CHUNK = 900  # ids per DELETE ... IN (...) (below SQLite's bound-parameter limit)
_ALARMED_MAX = 10_000  # outbox rows this process has raised an alarm for (each is reported once)


class Event(NamedTuple):
    """An event as it is chained: checked, signed by the process that created it."""

    created_at: datetime
    tenant_id: str | None
    actor: str
    event_type: str
    refs: dict[str, Any]
    evidence: dict[str, Any]
    event_id: str
    signature: str

    def document(self) -> dict[str, Any]:
        """The event's fields as they are signed and verified (``created_at`` as a string)."""
        return self._asdict() | {"created_at": format_timestamp(self.created_at)}


def signed_event(
    signer: Signer,
    *,
    created_at: datetime,
    tenant_id: str | None,
    actor: str,
    event_type: str,
    refs: dict[str, Any],
    evidence: dict[str, Any],
) -> Event:
    """A new event (already checked by ``prepare_entry``) with a fresh event id, signed."""
    event = Event(created_at, tenant_id, actor, event_type, refs, evidence, new_event_id(), "")
    return event._replace(signature=signer.sign_event(event.document()))


_table = AuditOutboxEntry.__table__
_INSERT = insert(_table)
_COLUMNS = [_table.c[name] for name in Event._fields]
_alarmed: set[tuple[int, str]] = set()  # (outbox id, event id)
_alarmed_lock = threading.Lock()


def record(
    session: Session,
    *,
    actor: str,
    event_type: str,
    tenant_id: str | None,
    refs: Mapping[str, Any] | None = None,
    evidence: Mapping[str, Any] | None = None,
    signer: Signer | None = None,
) -> None:
    """Record an event in the caller's transaction (checked as a chained entry is: AuditContentError), signed with
    ``signer`` (default: this process's key, app.audit.signing.event_signer)."""
    kind, refs, evidence = prepare_entry(actor, event_type, refs, evidence)
    event = signed_event(
        signer or event_signer(), created_at=utcnow(), tenant_id=tenant_id, actor=actor, event_type=kind, refs=refs,
        evidence=evidence,
    )  # fmt: skip
    session.connection().execute(_INSERT, event._asdict())


def _alarm_once(outbox_id: int, event_id: str, kind: str, detail: str) -> None:
    with _alarmed_lock:
        if (outbox_id, event_id) in _alarmed:
            return
        if len(_alarmed) >= _ALARMED_MAX:
            _alarmed.clear()
        _alarmed.add((outbox_id, event_id))
    alarm(kind, detail, outbox_id=outbox_id, event_id=event_id)


def take_locked(session: Session, public_key: Ed25519PublicKey) -> tuple[list[Event], list[int]]:
    """The committed outbox events to chain, in id order, and the outbox ids to delete once they are chained
    (``remove_locked``, same transaction). The caller holds the append lock.

    An event whose signature does not verify with ``public_key`` is left out and stays in the outbox (alarm
    ``outbox_signature``); a copy of an event already in the chain is left out and deleted (``outbox_replay``).
    """
    rows = session.execute(select(_table.c.id, *_COLUMNS).order_by(_table.c.id)).all()
    if not rows:
        return [], []
    chained = repository.chained_event_ids(session, event_ids=[row.event_id for row in rows])
    events: list[Event] = []
    remove: list[int] = []
    for row in rows:
        event = Event(*row[1:])
        if event.event_id in chained:
            _alarm_once(row.id, event.event_id, "outbox_replay", "a copy of an event already chained")
            remove.append(row.id)
            continue
        try:
            verify_event_signature(public_key, event.document())
        except VerificationError as exc:
            _alarm_once(row.id, event.event_id, "outbox_signature", f"outbox event refused: {exc}")
            continue
        events.append(event)
        remove.append(row.id)
    return events, remove


def remove_locked(session: Session, ids: Sequence[int]) -> None:
    """Delete outbox rows whose events are chained now (in this transaction) or were chained before."""
    for start in range(0, len(ids), DELETE_CHUNK):
        session.execute(delete(_table).where(_table.c.id.in_(ids[start : start + DELETE_CHUNK])))


def pending(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(_table.c.id.is_not(None)))))


def sequence(session: Session, public_key: Ed25519PublicKey | None = None) -> int:
    """Chain whatever the outbox holds, in the caller's transaction (the caller commits); returns how many outbox
    rows were consumed (chained, or dropped as copies of chained events). Takes the append lock only when there is
    something to chain. Signatures are checked with ``public_key`` (default: this process's key)."""
    from app.audit.service import chain

    if not pending(session):
        return 0
    repository.lock_for_append(session)
    events, remove = take_locked(session, public_key or event_signer().public_key)
    chain(session, events)
    remove_locked(session, remove)
    return len(remove)


def sequence_committed(sessionmaker: Callable[[], Session]) -> int:
    """``sequence`` in a transaction of its own, committed."""
    with sessionmaker() as session:
        count = sequence(session)
        session.commit()
        return count
