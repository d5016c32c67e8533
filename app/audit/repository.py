"""All SQL of the audit log. Functions flush, never commit: the caller's transaction owns the write."""

import hashlib
from collections.abc import Sequence

from sqlalchemy import Row, event, insert, or_, select, text, update
from sqlalchemy.orm import Session

from app.audit.orm import AuditEntry
from app.core.pagination import PageParams, keyset_page

# Transaction-level PostgreSQL advisory lock serialising appends (a key of its own, apart from model locks).
_INSERT = insert(AuditEntry.__table__)
APPEND_LOCK_KEY = int.from_bytes(hashlib.sha256(b"unlearn:audit:append").digest()[:8], "big", signed=True)
_IN_CHUNK = 900  # values per IN (...) (below SQLite's bound-parameter limit)


_APPENDED = "audit_appended"  # session.info key: this transaction appended entries it has not committed yet


def mark_appended(session: Session) -> None:
    session.info[_APPENDED] = True


def has_uncommitted_appends(session: Session) -> bool:
    """True while the session's transaction holds entries it appended and has not committed: a tree head signed
    over them could name a log that never exists (the transaction may roll back)."""
    return bool(session.info.get(_APPENDED))


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _transaction_ended(session: Session) -> None:
    session.info.pop(_APPENDED, None)


def lock_for_append(session: Session) -> None:
    """Hold the log's write lock until the caller's transaction ends.

    PostgreSQL: ``pg_advisory_xact_lock``. SQLite: a write that changes nothing, which takes the database's single
    write lock (waiting up to busy_timeout); later reads in this transaction then see every committed entry.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
    else:
        session.execute(update(AuditEntry).where(AuditEntry.seq < 0).values(seq=AuditEntry.seq))


def last_entry(session: Session) -> AuditEntry | None:
    return session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).first()


def last_seq_and_hash(session: Session) -> tuple[int, str] | None:
    """(seq, entry_hash) of the last entry: one primary-key index lookup reading two columns."""
    row = session.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def insert_entries(session: Session, *, rows: Sequence[dict]) -> None:
    """Insert chained entries (column dicts) together: one executemany, no unit of work."""
    session.connection().execute(_INSERT, list(rows))


def chained_event_ids(session: Session, *, event_ids: Sequence[str]) -> set[str]:
    """The ones among ``event_ids`` that an entry of the log holds already."""
    found: set[str] = set()
    for start in range(0, len(event_ids), _IN_CHUNK):
        chunk = event_ids[start : start + _IN_CHUNK]
        found.update(session.scalars(select(AuditEntry.event_id).where(AuditEntry.event_id.in_(chunk))))
    return found


def entry_rows(session: Session, *, first_seq: int, last_seq: int) -> Sequence[Row]:
    """Every stored column of the entries first_seq <= seq <= last_seq, in order (Core rows: no unit of work)."""
    table = AuditEntry.__table__
    query = select(table).where(table.c.seq >= first_seq, table.c.seq <= last_seq).order_by(table.c.seq)
    return session.execute(query).all()


def get_entry(session: Session, *, seq: int) -> AuditEntry | None:
    return session.get(AuditEntry, seq)


def max_seq(session: Session) -> int:
    return session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0


def entry_hashes(session: Session, *, first_seq: int, last_seq: int) -> list[tuple[int, str]]:
    """(seq, entry_hash) for first_seq <= seq <= last_seq, in order."""
    rows = session.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash)
        .where(AuditEntry.seq >= first_seq, AuditEntry.seq <= last_seq)
        .order_by(AuditEntry.seq)
    )
    return [(seq, entry_hash) for seq, entry_hash in rows]


def list_entries(
    session: Session,
    *,
    tenant_id: str | None,
    model_id: str | None = None,
    deletion_id: str | None = None,
    params: PageParams,
) -> tuple[list[AuditEntry], str | None]:
    """One page of entries in sequence order, and the cursor of the next; ``tenant_id`` None means every tenant."""
    query = select(AuditEntry)
    if tenant_id is not None:
        query = query.where(AuditEntry.tenant_id == tenant_id)
    if model_id is not None:
        query = query.where(AuditEntry.model_id == model_id)
    if deletion_id is not None:
        query = query.where(AuditEntry.request_id == deletion_id)
    return keyset_page(
        session,
        query,
        columns=[AuditEntry.seq],
        kinds=[int],
        params=params,
        descending=False,
        key_of=lambda entry: (entry.seq,),
    )


def entries_for_request(session: Session, *, request_id: str, model_id: str) -> Sequence[AuditEntry]:
    """Entries of one deletion request, and the version entries of its model, in order."""
    query = select(AuditEntry).where(
        or_(
            AuditEntry.request_id == request_id,
            (AuditEntry.model_id == model_id) & AuditEntry.event_type.in_(["version.created", "version.purged"]),
        )
    )
    return session.scalars(query.order_by(AuditEntry.seq)).all()
