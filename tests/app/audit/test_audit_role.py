"""The application role of migration 0005 (PostgreSQL): the service runs as it, and it cannot switch off, drop or
work around the audit tables' triggers, nor update or delete what they protect."""

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from unlearn_client.verify.checks import verify_log

from app.audit import outbox, tree
from app.audit.ddl import APP_ROLE
from app.audit.orm import AuditEntry
from app.audit.service import append_entry
from app.core.db import make_engine
from tests.app.audit.conftest import start_service
from tests.app.audit.test_audit_db import all_entries
from tests.helpers import register_uploaded_model, upload_digits
from tests.pgdb import PG_ADMIN_URL


@pytest.fixture(scope="module")
def role_url(pg_url) -> Iterator[str]:
    """A login role that is a member of the application role, as the docs tell operators to create."""
    name = f"unlearn_svc_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {name} LOGIN IN ROLE {APP_ROLE}"))
    try:
        yield make_url(pg_url).set(username=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"))
            conn.execute(text(f"DROP ROLE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def app_sessions(role_url):
    from sqlalchemy.orm import sessionmaker

    engine = make_engine(role_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def test_the_audit_path_works_as_the_application_role(app_sessions, signer):
    with app_sessions() as s:
        assert s.execute(text("SELECT current_user")).scalar() != "postgres"
        outbox.record(s, actor="key-1", event_type="apikey.created", tenant_id="t-1", refs={"key_id": "k"})
        s.commit()
    with app_sessions() as s:
        append_entry(s, actor="worker", event_type="deletion.started", tenant_id="t-1", refs={"request_id": "r"})
        s.commit()
    assert outbox.sequence_committed(app_sessions) == 0  # drained by the append
    with app_sessions() as s:
        head = tree.signed_tree_head(s, signer)
        stored = [e for e in s.scalars(select(AuditEntry.event_type).order_by(AuditEntry.seq))]
    assert stored[-2:] == ["apikey.created", "deletion.started"]
    verify_log(all_entries(app_sessions), signer.public_key, head)


@pytest.mark.parametrize(
    "statement, refusal",
    [
        ("ALTER TABLE audit_entries DISABLE TRIGGER ALL", "must be owner"),
        ("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only", "must be owner"),
        ("DROP TRIGGER audit_entries_append_only ON audit_entries", "must be owner"),
        ("ALTER TABLE audit_outbox DISABLE TRIGGER USER", "must be owner"),
        ("DROP TRIGGER audit_outbox_delete_chained ON audit_outbox", "must be owner"),
        ("DROP FUNCTION audit_outbox_guard() CASCADE", "must be owner"),
        ("SET session_replication_role = replica", "permission denied"),
        ("SET ROLE postgres", "permission denied"),
        ("UPDATE audit_entries SET actor = 'x'", "permission denied"),
        ("DELETE FROM audit_entries", "permission denied"),
        ("TRUNCATE audit_entries", "permission denied"),
        ("UPDATE audit_outbox SET actor = 'x'", "permission denied"),
        ("TRUNCATE audit_outbox", "permission denied"),
        ("DROP TABLE audit_entries", "must be owner"),
        ("UPDATE alembic_version SET version_num = '0001'", "permission denied"),
        ("CREATE TRIGGER t BEFORE INSERT ON audit_entries EXECUTE FUNCTION audit_outbox_guard()", "permission denied"),
    ],
)
def test_the_application_role_cannot_get_past_the_triggers(app_sessions, statement, refusal):
    with app_sessions() as s, pytest.raises(DBAPIError, match=refusal):
        s.execute(text(statement))


def test_outbox_delete_only_of_chained_events_as_the_application_role(app_sessions):
    with app_sessions() as s:
        outbox.record(s, actor="key-1", event_type="apikey.revoked", tenant_id="t-1", refs={"key_id": "k"})
        s.commit()
    with app_sessions() as s, pytest.raises(DBAPIError, match="not chained yet"):
        s.execute(text("DELETE FROM audit_outbox"))
    assert outbox.sequence_committed(app_sessions) == 1


def test_the_service_runs_as_the_application_role(role_url, signer_path, tmp_path, monkeypatch, admin_key):
    """The API on the role's connection: keys, a data set, a model, a deletion request, the audit endpoints."""
    key_path = str(signer_path)  # the key of this module's log
    for service in start_service(role_url, tmp_path, monkeypatch, admin_key, UNLEARN_AUDIT_KEY_PATH=key_path):
        client = service.client
        tenant = client.post("/v1/tenants", json={"name": f"role-{secrets.token_hex(4)}"})
        assert tenant.status_code == 201, tenant.text
        key = client.post("/v1/keys", json={"name": "a", "role": "admin", "tenant_id": tenant.json()["id"]})
        assert key.status_code == 201, key.text
        client.headers["Authorization"] = f"Bearer {key.json()['key']}"
        dataset = upload_digits(client, rows=40)
        model = register_uploaded_model(client, dataset["id"])
        deletion = client.post(f"/v1/models/{model['id']}/deletions", json={"sample_ids": ["user-3"]})
        assert deletion.status_code == 202, deletion.text
        assert client.get("/v1/audit/tree-head").status_code == 200
        receipt = client.get(f"/v1/deletions/{deletion.json()['id']}/receipt")
        assert receipt.status_code == 200, receipt.text
