"""The stored log: append-only in the database, gap-free and unforked under concurrent writers, provable."""

import secrets
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from unlearn_client.verify.checks import (
    verify_consistency_between,
    verify_entry_inclusion,
    verify_log,
    verify_tree_head,
)
from unlearn_client.verify.merkle import EMPTY_ROOT

from app.audit import tree
from app.audit.exceptions import AuditContentError
from app.audit.orm import AuditEntry
from app.audit.service import append_entry, entry_document
from app.core.db import Base, make_engine, utcnow
from app.core.migrate import upgrade
from tests.pgdb import PG_ADMIN_URL


def all_entries(sessions) -> list[dict]:
    with sessions() as s:
        return [entry_document(e) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]


def append(sessions, n: int = 1, **kw) -> list[int]:
    seqs = []
    with sessions() as s:
        for i in range(n):
            entry = append_entry(
                s,
                actor=kw.get("actor", "key-test"),
                event_type=kw.get("event_type", "model.registered"),
                tenant_id=kw.get("tenant_id", "t-1"),
                refs=kw.get("refs", {"model_id": f"m-{i}"}),
                evidence=kw.get("evidence", {"i": i, "auc": 0.1 * i}),
            )
            seqs.append(entry.seq)
        s.commit()
    return seqs


def test_schema_matches_orm(url):
    engine = make_engine(url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    audit_diffs = [d for d in diffs if "audit_entries" in repr(d)]
    assert audit_diffs == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET actor = 'someone else'",
        "UPDATE audit_entries SET evidence = '{}' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 1",
        "DELETE FROM audit_entries",
        "TRUNCATE audit_entries",
        "INSERT OR REPLACE INTO audit_entries SELECT * FROM audit_entries WHERE seq = 1",
    ],
)
def test_update_delete_truncate_refused(url, sessions, statement):
    dialect = make_url(url).get_backend_name()
    if ("TRUNCATE" in statement and dialect == "sqlite") or ("OR REPLACE" in statement and dialect != "sqlite"):
        pytest.skip(f"no such statement on {dialect}")
    append(sessions, 2)
    before = all_entries(sessions)
    with sessions() as s, pytest.raises(DBAPIError, match="append-only"):
        s.execute(text(statement))
        s.commit()
    assert all_entries(sessions) == before


def test_entry_survives_round_trip_and_rejects_forbidden_content(sessions):
    seq = append(sessions, evidence={"auc": 0.1 + 0.2, "tiny": 1e-300, "big": 1e300, "nan": float("nan"), "n": 3})[0]
    entry = next(e for e in all_entries(sessions) if e["seq"] == seq)
    assert entry["evidence"] == {"auc": 0.1 + 0.2, "tiny": 1e-300, "big": 1e300, "nan": "NaN", "n": 3}
    verify_log(all_entries(sessions))  # every stored entry re-hashes to its entry_hash
    count = len(all_entries(sessions))
    bad = [
        {"evidence": {"features": [[0.1, 0.2]]}},
        {"evidence": {"nested": {"labels": [1, 0]}}},
        {"refs": {"sample_ids": ["alice@example.com"]}},
        {"refs": {"api_key": "unl_x"}},
        {"evidence": {"client_secret": "x"}},
        {"event_type": "model.deleted_everything"},
        {"evidence": {"blob": "x" * 300_000}},
    ]
    for kw in bad:
        with pytest.raises(AuditContentError):
            append(sessions, **kw)
    assert len(all_entries(sessions)) == count


def test_rolled_back_append_leaves_no_gap(sessions):
    with sessions() as s:
        seq = append_entry(s, actor="k", event_type="model.registered", refs={}, evidence={}).seq
        s.rollback()
    assert append(sessions)[0] == seq
    entries = all_entries(sessions)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))


def test_concurrent_writers_gap_free_and_verifying(url, sessions, signer):
    """8 writers, each append its own transaction, 500 entries in all (some rolled back): one unbroken log."""
    start = len(all_entries(sessions))
    writers, total = 8, 500 if make_url(url).get_backend_name() == "postgresql" else 96
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def writer(w: int) -> None:
        try:
            barrier.wait()
            for i in range(w, total, writers):
                with sessions() as s:
                    s.execute(select(AuditEntry.seq).limit(1)).all()  # the transaction has read before
                    append_entry(
                        s, actor=f"writer-{w}", event_type="deletion.started", tenant_id=f"t-{w}",
                        refs={"request_id": f"r-{i}", "model_id": f"m-{w}"}, evidence={"i": i},
                    )  # fmt: skip
                    if i % 17 == 0:  # a transaction that fails after appending
                        s.rollback()
                        append_entry(s, actor=f"writer-{w}", event_type="deletion.started", evidence={"i": i})
                    s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = all_entries(sessions)
    assert [e["seq"] for e in entries] == list(range(1, start + total + 1))
    with sessions() as s:
        head = tree.signed_tree_head(s, signer)
    assert head["tree_size"] == start + total
    assert verify_log(entries, signer.public_key, head).hex() == head["root_hash"]
    assert sorted(e["evidence"]["i"] for e in entries[start:]) == list(range(total))


def test_proofs_from_the_database_verify(sessions, signer):
    append(sessions, 5)
    with sessions() as s:
        n = tree.tree_size(s, signer)
        head = tree.signed_tree_head(s, signer)
        old = tree.signed_tree_head(s, signer, size=3)
        for seq in (1, 2, n // 2, n):
            doc = {
                "entry": entry_document(s.get(AuditEntry, seq)),
                "inclusion_proof": tree.inclusion_proof(s, signer, seq=seq, size=n),
                "tree_head": head,
            }
            verify_entry_inclusion(doc, signer.public_key)
        proof = tree.consistency_proof(s, signer, first=3, second=n)
        verify_consistency_between(old, head, proof["proof"], signer.public_key)
        with pytest.raises(LookupError):
            tree.load_tree(s, signer, n + 1)
    assert verify_tree_head(head, signer.public_key) == (n, bytes.fromhex(head["root_hash"]))


def test_no_tree_head_over_uncommitted_entries(sessions, signer):
    """A transaction that appended cannot sign a head or load the tree until it commits: a head over entries that
    may roll back would name a log that never existed, and the next head could not be consistent with it."""
    with sessions() as s:
        append_entry(s, actor="k", event_type="model.registered", refs={}, evidence={"ghost": True})
        with pytest.raises(RuntimeError, match="committed"):
            tree.signed_tree_head(s, signer)
        with pytest.raises(RuntimeError, match="committed"):
            tree.inclusion_proof(s, signer, seq=1, size=1)
        s.rollback()
        tree.signed_tree_head(s, signer)  # the rollback ended the transaction that appended
    append(sessions, evidence={"real": True})
    with sessions() as s:
        head = tree.signed_tree_head(s, signer)
    entries = all_entries(sessions)
    assert head["tree_size"] == len(entries) and not any(e["evidence"].get("ghost") for e in entries)
    assert bytes.fromhex(head["root_hash"]) == verify_log(entries, signer.public_key)


def test_empty_log_tree_head(tmp_path, signer):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s:
        head = tree.signed_tree_head(s, signer)
    engine.dispose()
    assert head["tree_size"] == 0 and head["root_hash"] == EMPTY_ROOT.hex()
    verify_log([], signer.public_key, head)


def test_fork_refused_by_the_database(sessions):
    """Two entries can never chain from the same predecessor, whatever the application does."""
    append(sessions)
    last = all_entries(sessions)[-1]
    with sessions() as s, pytest.raises(IntegrityError):
        s.execute(
            AuditEntry.__table__.insert().values(
                seq=last["seq"] + 1, created_at=utcnow(),
                actor="x", event_type="model.registered", refs={}, evidence={},
                prev_hash=last["prev_hash"], entry_hash="00" * 32,
            )
        )  # fmt: skip
        s.commit()


def test_migration_downgrades_and_upgrades(tmp_path):
    from alembic import command

    from app.core.migrate import alembic_config

    name = f"audit_mig_{secrets.token_hex(6)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    pg = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        for url in (pg, f"sqlite:///{tmp_path / 'mig.db'}"):
            upgrade(url)
            command.downgrade(alembic_config(url), "0001")
            engine = make_engine(url)
            with engine.connect() as conn:
                assert not engine.dialect.has_table(conn, "audit_entries")
            engine.dispose()
            upgrade(url)
            engine = make_engine(url)
            with Session(engine) as s:
                append_entry(s, actor="k", event_type="model.registered")
                s.commit()
                with pytest.raises(DBAPIError, match="append-only"):
                    s.execute(text("DELETE FROM audit_entries"))
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
