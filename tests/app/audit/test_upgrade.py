"""Migration 0005 on a log written by the previous release: its entries stay as they are (unsigned, hashes
unchanged), the events waiting in the outbox are chained, and the service accepts exactly that unsigned prefix."""

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from unlearn_client.verify.checks import VerificationError, verify_log
from unlearn_client.verify.merkle import MerkleTree, leaf_hash

from app.audit.canonical import GENESIS_HASH, compute_entry_hash, format_timestamp
from app.audit.signing import load_public_key
from app.core.db import make_engine
from app.core.migrate import upgrade
from tests.app.audit import tamper
from tests.app.audit.conftest import start_service
from tests.pgdb import PG_ADMIN_URL

LEGACY = 5


@contextmanager
def database_at_0003(dialect: str, tmp_path) -> Iterator[str]:
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0003")
        yield url
        return
    name = f"audit_upgrade_{secrets.token_hex(6)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url, "0003")
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_old_log(url: str) -> list[str]:
    """LEGACY - 1 chained entries and one outbox event, as release 0003 wrote them; returns the entry hashes."""
    engine = make_engine(url)
    prev, hashes = GENESIS_HASH, []
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        for seq in range(1, LEGACY):
            created = t0 + timedelta(seconds=seq)
            fields = {"seq": seq, "tenant_id": None, "actor": "key-old", "event_type": "tenant.created",
                      "refs": {"tenant_id": f"t{seq}"}, "evidence": {}, "prev_hash": prev}  # fmt: skip
            prev = compute_entry_hash(fields | {"created_at": format_timestamp(created)})
            hashes.append(prev)
            conn.execute(
                text(
                    "INSERT INTO audit_entries (seq, created_at, tenant_id, actor, event_type, refs, evidence, "
                    "prev_hash, entry_hash) VALUES (:seq, :created, NULL, 'key-old', 'tenant.created', :refs, '{}', "
                    ":prev, :hash)"
                ),
                {"seq": seq, "created": created, "refs": f'{{"tenant_id": "t{seq}"}}', "prev": fields["prev_hash"],
                 "hash": prev},
            )  # fmt: skip
        conn.execute(
            text(
                "INSERT INTO audit_outbox (created_at, tenant_id, actor, event_type, refs, evidence) "
                "VALUES (:created, NULL, 'key-old', 'apikey.revoked', '{\"key_id\": \"k\"}', '{}')"
            ),
            {"created": t0 + timedelta(seconds=LEGACY)},
        )
    engine.dispose()
    return hashes


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_upgrade_keeps_the_old_log_and_accepts_only_its_prefix_unsigned(dialect, tmp_path, monkeypatch, admin_key):
    with database_at_0003(dialect, tmp_path) as url:
        old_hashes = write_old_log(url)
        old_root = MerkleTree([leaf_hash(bytes.fromhex(h)) for h in old_hashes]).root()
        messages = []
        handler = logging.Handler()
        handler.emit = lambda record: messages.append(record.getMessage())
        logging.getLogger("alembic.runtime.migration").addHandler(handler)
        try:
            upgrade(url)
        finally:
            logging.getLogger("alembic.runtime.migration").removeHandler(handler)
        assert f"set UNLEARN_AUDIT_LEGACY_ENTRIES={LEGACY}" in " ".join(messages)
        with tamper.owner(url) as db:
            stored = tamper.entries(db)
        assert [e["entry_hash"] for e in stored[: LEGACY - 1]] == old_hashes  # heads already issued stay valid
        assert stored[-1]["event_type"] == "apikey.revoked" and stored[-1]["signature"] is None  # the outbox's

        env = {"UNLEARN_AUDIT_LEGACY_ENTRIES": str(LEGACY)}
        for service in start_service(url, tmp_path, monkeypatch, admin_key, **env):
            service.client.post("/v1/tenants", json={"name": "after-upgrade"})
            head = service.client.get("/v1/audit/tree-head")
            assert head.status_code == 200, head.text
            entries = service.client.get("/v1/audit", params={"limit": 1000}).json()["items"]
            assert all(e["signature"] for e in entries[LEGACY:]) and len(entries) > LEGACY
            key = load_public_key(service.client.get("/v1/audit/public-key").json()["public_key_pem"])
            verify_log(entries, key, head.json(), legacy_entries=LEGACY)
            with pytest.raises(VerificationError, match="entry 1 carries no signature"):
                verify_log(entries, key, head.json())
            proof = service.client.get("/v1/audit/consistency", params={"from": LEGACY - 1}).json()
            assert proof["first_root"] == old_root.hex()  # the old log is a prefix of the new one
            with tamper.owner(url) as db:  # an unsigned entry after the prefix is still refused
                tamper.forge_entry(db, signer=None)
            assert service.client.get("/v1/audit/tree-head").status_code == 503
