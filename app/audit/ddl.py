"""Triggers that make the audit tables append-only in the database itself, and the application role.

Used by the migrations 0002_audit_log (audit_entries) and 0005_audit_hardening (audit_outbox, the role).

PostgreSQL: one statement-level trigger refuses UPDATE, DELETE and TRUNCATE (also when no row matches).
SQLite: BEFORE UPDATE and BEFORE DELETE triggers abort, and a BEFORE INSERT trigger refuses an entry that would
replace an existing one (``INSERT OR REPLACE`` deletes rows without firing delete triggers) or fork the chain.
A database superuser or the table owner can still drop the triggers; the hash chain and signed tree heads make
such an edit detectable, not impossible.
"""

TABLE = "audit_entries"

_PG_UP = [
    f"""
    CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{TABLE} is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    f"""
    CREATE TRIGGER {TABLE}_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_append_only()
    """,
]
_PG_DOWN = [
    f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}",
    f"DROP FUNCTION IF EXISTS {TABLE}_append_only()",
]
_SQLITE_UP = [
    f"""
    CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER {TABLE}_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: DELETE refused'); END
    """,
    f"""
    CREATE TRIGGER {TABLE}_no_replace BEFORE INSERT ON {TABLE}
    WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE seq = NEW.seq OR prev_hash = NEW.prev_hash)
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: an entry with this seq or prev_hash exists'); END
    """,
]
_SQLITE_DOWN = [f"DROP TRIGGER IF EXISTS {TABLE}_{name}" for name in ("no_update", "no_delete", "no_replace")]


def append_only_ddl(dialect: str) -> list[str]:
    """Statements that install the triggers on a database of this dialect ("postgresql" or "sqlite")."""
    return {"postgresql": _PG_UP, "sqlite": _SQLITE_UP}[dialect]


def drop_append_only_ddl(dialect: str) -> list[str]:
    return {"postgresql": _PG_DOWN, "sqlite": _SQLITE_DOWN}[dialect]


# --- migration 0005: outbox triggers, the application role --------------------------------------------------------
#
# audit_outbox refuses UPDATE and TRUNCATE, and refuses DELETE of an event that is not chained yet: the sequencer
# inserts an event into audit_entries and deletes its outbox row in the same transaction, so a genuine event leaves
# the outbox only once it is in the chain, and nobody can make a pending event vanish. A row planted by someone
# without the signing key is never chained (app.audit.outbox), so it cannot be deleted either: it stays as
# evidence until the table owner removes it.

OUTBOX = "audit_outbox"
APP_ROLE = "unlearn_app"  # the role the service runs as on PostgreSQL (member roles log in)

_PG_OUTBOX_UP = [
    f"""
    CREATE OR REPLACE FUNCTION {OUTBOX}_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            IF EXISTS (SELECT 1 FROM {TABLE} WHERE event_id = OLD.event_id) THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION '{OUTBOX}: event % is not chained yet: DELETE refused', OLD.event_id
                USING ERRCODE = 'restrict_violation';
        END IF;
        RAISE EXCEPTION '{OUTBOX} is insert-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    f"""
    CREATE TRIGGER {OUTBOX}_no_update
    BEFORE UPDATE OR TRUNCATE ON {OUTBOX}
    FOR EACH STATEMENT EXECUTE FUNCTION {OUTBOX}_guard()
    """,
    f"""
    CREATE TRIGGER {OUTBOX}_delete_chained
    BEFORE DELETE ON {OUTBOX}
    FOR EACH ROW EXECUTE FUNCTION {OUTBOX}_guard()
    """,
]
_PG_OUTBOX_DOWN = [
    f"DROP TRIGGER IF EXISTS {OUTBOX}_delete_chained ON {OUTBOX}",
    f"DROP TRIGGER IF EXISTS {OUTBOX}_no_update ON {OUTBOX}",
    f"DROP FUNCTION IF EXISTS {OUTBOX}_guard()",
]
_SQLITE_OUTBOX_UP = [
    f"""
    CREATE TRIGGER {OUTBOX}_no_update BEFORE UPDATE ON {OUTBOX}
    BEGIN SELECT RAISE(ABORT, '{OUTBOX} is insert-only: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER {OUTBOX}_delete_chained BEFORE DELETE ON {OUTBOX}
    WHEN NOT EXISTS (SELECT 1 FROM {TABLE} WHERE event_id = OLD.event_id)
    BEGIN SELECT RAISE(ABORT, '{OUTBOX}: the event is not chained yet: DELETE refused'); END
    """,
    f"""
    CREATE TRIGGER {OUTBOX}_no_replace BEFORE INSERT ON {OUTBOX}
    WHEN EXISTS (SELECT 1 FROM {OUTBOX} WHERE id = NEW.id OR event_id = NEW.event_id)
    BEGIN SELECT RAISE(ABORT, '{OUTBOX} is insert-only: an event with this id exists'); END
    """,
    # audit_entries: INSERT OR REPLACE on a duplicate event_id would delete the entry holding it.
    f"DROP TRIGGER IF EXISTS {TABLE}_no_replace",
    f"""
    CREATE TRIGGER {TABLE}_no_replace BEFORE INSERT ON {TABLE}
    WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE seq = NEW.seq OR prev_hash = NEW.prev_hash OR event_id = NEW.event_id)
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: an entry with this seq, prev_hash or event_id exists'); END
    """,
]
_SQLITE_OUTBOX_DOWN = [
    *(f"DROP TRIGGER IF EXISTS {OUTBOX}_{name}" for name in ("no_update", "delete_chained", "no_replace")),
    f"DROP TRIGGER IF EXISTS {TABLE}_no_replace",
    _SQLITE_UP[2],
]

# The application role: owns nothing, so it cannot ALTER, DISABLE or DROP a trigger (only the owner or a superuser
# can), nor set session_replication_role (superuser only). Audit tables: SELECT and INSERT, and DELETE on the
# outbox (the triggers still decide which rows). Every other table of the schema: SELECT, INSERT, UPDATE, DELETE.
# Tables and sequences that later migrations create get the same by default. Roles belong to the whole server:
# the role is created once and kept when a database is dropped or downgraded.
_PG_ROLE_UP = [
    f"""
    DO $$
    BEGIN
        CREATE ROLE {APP_ROLE} NOLOGIN;
    EXCEPTION
        WHEN duplicate_object OR unique_violation THEN NULL;
        WHEN insufficient_privilege THEN
            RAISE WARNING 'cannot create role {APP_ROLE} (the migrating role lacks CREATEROLE): no grants made; '
                'create the role and grant as docs/audit.md shows';
    END
    $$
    """,
    f"""
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            RETURN;
        END IF;
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO {APP_ROLE}', current_schema());
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO {APP_ROLE}',
                       current_schema());
        EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO {APP_ROLE}', current_schema());
        REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {TABLE} FROM {APP_ROLE};
        REVOKE UPDATE, TRUNCATE, REFERENCES, TRIGGER ON {OUTBOX} FROM {APP_ROLE};
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {APP_ROLE};
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES '
                       'TO {APP_ROLE}', current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}',
                       current_schema());
    END
    $$
    """,
]
_PG_ROLE_DOWN = [
    f"""
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            RETURN;
        END IF;
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM {APP_ROLE}',
                       current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM {APP_ROLE}',
                       current_schema());
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM {APP_ROLE}', current_schema());
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM {APP_ROLE}', current_schema());
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM {APP_ROLE}', current_schema());
    END
    $$
    """,
]


def hardening_ddl(dialect: str) -> list[str]:
    """Statements of migration 0005 for this dialect: outbox triggers (both), the application role (PostgreSQL)."""
    return {"postgresql": _PG_OUTBOX_UP + _PG_ROLE_UP, "sqlite": _SQLITE_OUTBOX_UP}[dialect]


def drop_hardening_ddl(dialect: str) -> list[str]:
    return {"postgresql": _PG_ROLE_DOWN + _PG_OUTBOX_DOWN, "sqlite": _SQLITE_OUTBOX_DOWN}[dialect]
