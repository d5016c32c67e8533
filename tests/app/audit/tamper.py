"""What someone holding the database (and, where said, the signing key) can do to the stored log, done the way
they would do it: SQL on a connection of their own, as the tables' owner when triggers are in the way."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, text

from app.audit.canonical import compute_entry_hash, entry_document, format_timestamp, normalize
from app.audit.orm import AuditEntry, AuditOutboxEntry
from app.audit.signing import Signer, new_event_id
from app.core.db import make_engine, utcnow

TABLES = ("audit_entries", "audit_outbox")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@contextmanager
def owner(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def triggers_off(engine: Engine) -> Iterator[None]:
    """The audit tables' triggers disabled (PostgreSQL: ALTER TABLE as the owner; SQLite: dropped, then put back)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in TABLES:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        try:
            yield
        finally:
            with engine.begin() as conn:
                for table in TABLES:
                    conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        return
    with engine.begin() as conn:
        saved = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (:a, :b)"),
            {"a": TABLES[0], "b": TABLES[1]},
        ).all()
        for name, _sql in saved:
            conn.execute(text(f"DROP TRIGGER {name}"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            for _name, sql in saved:
                conn.execute(text(sql))


def entries(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [entry_document(r) for r in conn.execute(select(AuditEntry.__table__).order_by(AuditEntry.seq))]


def forge_entry(engine: Engine, *, signer: Signer | None, seq_step: int = 1, **fields: Any) -> dict[str, Any]:
    """INSERT an entry chained correctly after the last one (``seq_step`` 2 leaves a gap), signed by ``signer``
    (None: unsigned). Needs no trigger off: INSERT is what the application does too."""
    last = entries(engine)[-1]
    entry = normalize(
        {
            "seq": last["seq"] + seq_step,
            "created_at": format_timestamp(utcnow()),
            "tenant_id": last["tenant_id"],
            "actor": "worker",
            "event_type": "deletion.succeeded",
            "refs": {"request_id": "r-forged", "model_id": "m-forged", "version": 2},
            "evidence": {"forget_commitment": "ab" * 32, "after": {"membership_auc": 0.5}},
            "prev_hash": last["entry_hash"],
        }
        | fields
    )
    entry["event_id"] = new_event_id() if signer else None
    entry["signature"] = signer.sign_event(entry) if signer else None
    entry["entry_hash"] = compute_entry_hash(entry)
    row = entry | {"created_at": parse_time(entry["created_at"])}
    row |= {"model_id": entry["refs"].get("model_id"), "request_id": entry["refs"].get("request_id")}
    with engine.begin() as conn:
        conn.execute(insert(AuditEntry.__table__).values(**row))
    return entry


def plant_outbox(engine: Engine, *, signer: Signer | None, event: dict[str, Any] | None = None) -> int:
    """INSERT an event into the outbox (``event``: a copy of a genuine one), signed by ``signer`` (None: a made-up
    signature); returns its outbox id."""
    doc = event or normalize(
        {
            "event_id": new_event_id(),
            "created_at": format_timestamp(utcnow()),
            "tenant_id": None,
            "actor": "key-planted",
            "event_type": "apikey.created",
            "refs": {"key_id": "k-planted"},
            "evidence": {"role": "admin"},
        }
    )
    if event is None:
        doc["signature"] = signer.sign_event(doc) if signer else "A" * 86 + "=="
    row = {k: doc[k] for k in ("event_id", "tenant_id", "actor", "event_type", "refs", "evidence", "signature")}
    row["created_at"] = parse_time(doc["created_at"])
    table = AuditOutboxEntry.__table__
    with engine.begin() as conn:
        return conn.execute(insert(table).values(**row).returning(table.c.id)).scalar_one()


def rewrite_entry(engine: Engine, seq: int, *, signer: Signer | None = None, **fields: Any) -> None:
    """Change entry ``seq`` and re-chain every entry after it (triggers off), so that the chain holds again;
    with ``signer`` (a holder of database and key) the changed entry is signed again too."""
    log = entries(engine)
    prev = log[seq - 2]["entry_hash"] if seq > 1 else "0" * 64
    rows = []
    for entry in log[seq - 1 :]:
        entry = dict(entry) | ({**fields} if entry["seq"] == seq else {}) | {"prev_hash": prev}
        if signer is not None and entry["seq"] == seq:
            entry["signature"] = signer.sign_event(entry)
        entry["entry_hash"] = compute_entry_hash(entry)
        prev = entry["entry_hash"]
        rows.append(entry)
    put_back(engine, rows)


def put_back(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Overwrite stored entries with ``rows`` (entry documents), triggers off."""
    table = AuditEntry.__table__
    with triggers_off(engine), engine.begin() as conn:
        # prev_hash is unique: clear the rows first, then write them back
        conn.execute(table.delete().where(table.c.seq.in_([r["seq"] for r in rows])))
        for r in rows:
            values = {k: r[k] for k in ("seq", "tenant_id", "actor", "event_type", "refs", "evidence")}
            values |= {k: r[k] for k in ("prev_hash", "entry_hash", "event_id", "signature")}
            values["created_at"] = parse_time(r["created_at"])
            values |= {"model_id": r["refs"].get("model_id"), "request_id": r["refs"].get("request_id")}
            conn.execute(insert(table).values(**values))
